//! Just enough HTTP/1.1 for a Prometheus scrape: one GET per connection, the answer closed.
/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Metrics,
    Other(String),
    Bad,
}

/// The head of a request (up to its blank line), or None while it is incomplete.
pub fn parse(head: &[u8]) -> Option<Request> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = String::from_utf8_lossy(&head[..end]);
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Some(Request::Bad);
    };
    if !version.starts_with("HTTP/1.") {
        return Some(Request::Bad);
    }
    let path = target.split('?').next().unwrap_or("");
    Some(match (method, path) {
        ("GET" | "HEAD", "/metrics") => Request::Metrics,
        _ => Request::Other(format!("{method} {path}")),
    })
}

/// A whole response.
pub fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Some(Request::Metrics));
        assert_eq!(parse(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Some(Request::Metrics));
        assert_eq!(parse(b"POST /metrics HTTP/1.1\r\n\r\n"), Some(Request::Other("POST /metrics".into())));
        assert_eq!(parse(b"GET /\r\n\r\n"), Some(Request::Bad));
        assert_eq!(parse(b"GET / SPDY\r\n\r\n"), Some(Request::Bad));
        let r = String::from_utf8(response("200 OK", TEXT_FORMAT, "a 1\n")).unwrap();
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n") && r.contains("Content-Length: 4\r\n") && r.ends_with("\r\n\r\na 1\n")
        );
    }
}
