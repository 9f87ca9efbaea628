//! Per-VE outgoing rate (`--rate`): a tbf on an ifb the tc program redirects to.
use super::*;

/// Parses `--rate`: kbit/s as a number, or OpenVZ's `dev:class:kbit`; 0 or `none` means
/// no limit.
pub fn parse_rate(s: &str) -> Result<Option<u64>, NetError> {
    let fields: Vec<&str> = s.trim().split(':').collect();
    let v = match fields.as_slice() {
        [k] | [_, _, k] => *k,
        _ => return Err(NetError::BadRate(s.to_string())),
    };
    if v == "none" {
        return Ok(None);
    }
    match v.parse::<u64>() {
        // Up to 1 Tbit/s: bytes per second then fit tbf's 64-bit rate.
        Ok(k) if k <= 1_000_000_000 => Ok((k > 0).then_some(k)),
        _ => Err(NetError::BadRate(s.to_string())),
    }
}

/// A VE's shaper: an ifb device on the host (unique per VE like its pair's host end).
pub fn shaper_ifname(cgid: u64) -> String {
    format!("vzr{:x}", cgid & 0xffff_ffff_ffff)
}

/// The tbf qdisc's options for `kbit` (TCA_OPTIONS of kind "tbf"): the bucket holds 20 ms
/// at the rate (at least 16 KiB, so a full-sized frame always fits; larger GSO packets are
/// split by tbf), and the queue holds 200 ms, at least 1 MiB (about a classic 1000-packet
/// pfifo), before it drops: a TCP sender, whose queued bytes TCP small queues bound, then
/// slows down on its own window instead of losing packets (a 64 KiB floor let TCP fall
/// 13 % under a 4000 kbit/s limit), where a policer's losses would collapse it.
pub(super) fn tbf_options(kbit: u64) -> Vec<rtnetlink::packet_route::tc::TcOption> {
    use rtnetlink::packet_core::DefaultNla;
    use rtnetlink::packet_route::tc::TcOption;
    const TCA_TBF_PARMS: u16 = 1;
    const TCA_TBF_RATE64: u16 = 4;
    const TCA_TBF_BURST: u16 = 6;
    const TC_LINKLAYER_ETHERNET: u8 = 1;
    let bytes_per_sec = kbit * 1000 / 8;
    let burst = (bytes_per_sec / 50).clamp(16 * 1024, u64::from(u32::MAX)) as u32;
    let limit = (bytes_per_sec / 5).clamp(1024 * 1024, u64::from(u32::MAX)) as u32;
    // struct tc_tbf_qopt: rate and peakrate (struct tc_ratespec, 12 bytes each), limit,
    // buffer, mtu. The burst attribute stands in for buffer; no peak rate.
    let mut qopt = Vec::with_capacity(36);
    qopt.extend_from_slice(&[0, TC_LINKLAYER_ETHERNET, 0, 0, 0, 0, 0, 0]);
    qopt.extend_from_slice(&(bytes_per_sec.min(u64::from(u32::MAX)) as u32).to_ne_bytes());
    qopt.extend_from_slice(&[0; 12]);
    qopt.extend_from_slice(&limit.to_ne_bytes());
    qopt.extend_from_slice(&[0; 8]);
    let mut opts = vec![
        TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, qopt)),
        TcOption::Other(DefaultNla::new(TCA_TBF_BURST, burst.to_ne_bytes().to_vec())),
    ];
    if bytes_per_sec > u64::from(u32::MAX) {
        opts.push(TcOption::Other(DefaultNla::new(TCA_TBF_RATE64, bytes_per_sec.to_ne_bytes().to_vec())));
    }
    opts
}

/// Makes (or retunes) a VE's shaper for `kbit` and returns its ifindex for the tc program
/// to redirect the VE's traffic into.
pub fn set_shaper(cgid: u64, kbit: u64) -> Result<u32, NetError> {
    use rtnetlink::packet_core::{
        NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST,
    };
    use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage};
    use rtnetlink::packet_route::RouteNetlinkMessage;
    let name = shaper_ifname(cgid);
    with_netlink(async |mut h| {
        let idx = match link_index(&h, &name).await {
            Ok(i) => i,
            Err(NetError::NoLink(_)) => {
                let mut ifb = rtnetlink::LinkMessageBuilder::<rtnetlink::LinkUnspec>::new_with_info_kind(
                    rtnetlink::packet_route::link::InfoKind::Ifb,
                )
                .name(name.clone())
                .build();
                tag(&mut ifb);
                h.link().add(ifb).execute().await?;
                link_index(&h, &name).await?
            }
            Err(e) => return Err(e),
        };
        let mut msg = TcMessage::with_index(idx as i32);
        msg.header.parent = TcHandle::ROOT;
        msg.header.handle = TcHandle { major: 1, minor: 0 };
        msg.attributes.push(TcAttribute::Kind("tbf".to_string()));
        msg.attributes.push(TcAttribute::Options(tbf_options(kbit)));
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewQueueDiscipline(msg));
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        let mut resp = h.request(req)?;
        while let Some(m) = futures::StreamExt::next(&mut resp).await {
            if let NetlinkPayload::Error(e) = m.payload {
                return Err(rtnetlink::Error::NetlinkError(e).into());
            }
        }
        h.link().set(LinkUnspec::new_with_index(idx).up().build()).execute().await?;
        Ok(idx)
    })
}

/// Removes a VE's shaper; missing is fine.
pub fn del_shaper(cgid: u64) -> Result<(), NetError> {
    del_link(&shaper_ifname(cgid))
}
