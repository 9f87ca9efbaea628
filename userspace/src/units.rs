//! The one size syntax every limit uses: a number with an optional binary suffix, K, M, G
//! or T (powers of 1024, either case), as vzctl writes them. Callers say what the bare
//! number means (bytes, 1 KiB blocks, pages) and whether fractions are allowed.
/// Page size of the beancounters' page units and `P` suffixes.
pub const PAGE_SIZE: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeError {
    /// Not a number (or a fraction where none is allowed).
    NotANumber,
    /// A suffix other than K, M, G, T (and whatever the caller adds).
    UnknownSuffix(char),
    /// Past what the caller's unit can hold.
    OutOfRange,
}

/// `"12G"` -> (`"12"`, Some('G')); `"12"` -> (`"12"`, None). The suffix is upper-cased.
pub fn split_suffix(s: &str) -> (&str, Option<char>) {
    let t = s.trim();
    match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], Some(c.to_ascii_uppercase())),
        _ => (t, None),
    }
}

/// K, M, G, T as powers of 1024.
pub fn binary_multiplier(suffix: char) -> Option<u64> {
    match suffix.to_ascii_uppercase() {
        'K' => Some(1 << 10),
        'M' => Some(1 << 20),
        'G' => Some(1 << 30),
        'T' => Some(1 << 40),
        _ => None,
    }
}

/// Bytes from a size: a whole number, optionally with K, M, G or T.
pub fn parse_bytes(s: &str) -> Result<u64, SizeError> {
    let (num, suffix) = split_suffix(s);
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SizeError::NotANumber);
    }
    let n: u64 = num.parse().map_err(|_| SizeError::OutOfRange)?;
    match suffix {
        None => Ok(n),
        Some(c) => {
            let mul = binary_multiplier(c).ok_or(SizeError::UnknownSuffix(c))?;
            n.checked_mul(mul).ok_or(SizeError::OutOfRange)
        }
    }
}

/// A size in `unit`-byte units (a bare number is already in units), with fractions
/// ("2.2G", as OpenVZ writes disk sizes), rounded to the nearest unit, at most
/// `u64::MAX / 2`.
pub fn parse_units_fractional(s: &str, unit: u64) -> Result<u64, SizeError> {
    let (num, suffix) = split_suffix(s);
    let mul = match suffix {
        None => unit.max(1),
        Some(c) => binary_multiplier(c).ok_or(SizeError::UnknownSuffix(c))?,
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(SizeError::NotANumber);
    }
    let v: f64 = num.parse().map_err(|_| SizeError::NotANumber)?;
    let units = v * mul as f64 / unit.max(1) as f64;
    if !units.is_finite() || units > (u64::MAX / 2) as f64 {
        return Err(SizeError::OutOfRange);
    }
    Ok(units.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bytes_with_binary_suffixes() {
        assert_eq!(parse_bytes("7"), Ok(7));
        assert_eq!(parse_bytes("1m"), Ok(1 << 20));
        assert_eq!(parse_bytes(" 2G "), Ok(2 << 30));
        assert_eq!(parse_bytes("1X"), Err(SizeError::UnknownSuffix('X')));
        assert_eq!(parse_bytes("1.5G"), Err(SizeError::NotANumber));
        assert_eq!(parse_bytes("-1"), Err(SizeError::NotANumber));
        assert_eq!(parse_bytes("16777216T"), Err(SizeError::OutOfRange));
    }

    #[test]
    fn fractions_round_to_the_nearest_unit() {
        assert_eq!(parse_units_fractional("2.5M", 1024), Ok(2560));
        assert_eq!(parse_units_fractional("10", 1024), Ok(10));
        assert_eq!(parse_units_fractional("1e3", 1024), Err(SizeError::NotANumber));
        assert_eq!(parse_units_fractional("99999999999T", 1024), Err(SizeError::OutOfRange));
    }
}
