//! The client's IP address behind trusted reverse proxies.
//!
//! The peer address is the client unless the peer is one of `TRUSTED_PROXIES`; then the one
//! forwarding header the proxies write (`FORWARDED_HEADER`: `X-Forwarded-For`, or RFC 7239's
//! `Forwarded`) is read **from the right**: each trusted proxy appends the address it received
//! the request from, so the right-most entry that is not a trusted proxy is the client. Entries
//! further left were written by the client itself and prove nothing. Entries may carry a port
//! (`203.0.113.7:4711`, `"[2001:db8::1]:4711"`) or IPv6 brackets; both are accepted.
//!
//! Only the configured header is read: a proxy that maintains `X-Forwarded-For` passes a
//! client's own `Forwarded` header through untouched, so reading both would let the client
//! choose its address.

use crate::state::{TrustedProxy, WebSettings};
use actix_web::HttpRequest;
use std::net::{IpAddr, SocketAddr};

/// Which header the trusted proxies write the forwarding chain into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    /// Parses the setting's value: `x-forwarded-for` or `forwarded` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Some(Self::XForwardedFor),
            "forwarded" => Some(Self::Forwarded),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }

    /// The chain's entries, left to right; `None` for an entry that names no IP address
    /// (`unknown`, an obfuscated identifier, garbage).
    fn entries(self, values: &[&str]) -> Vec<Option<IpAddr>> {
        match self {
            Self::XForwardedFor => values
                .iter()
                .flat_map(|v| v.split(','))
                .map(|entry| node_ip(entry.trim()))
                .collect(),
            Self::Forwarded => values
                .iter()
                .flat_map(|v| split_outside_quotes(v, ','))
                .map(|element| forwarded_for(&element).and_then(|node| node_ip(&node)))
                .collect(),
        }
    }
}

/// The client's IP address (see the module docs); `None` only without a peer address.
pub(crate) fn client_ip(req: &HttpRequest, web: &WebSettings) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let values: Vec<&str> = req
        .headers()
        .get_all(web.forwarded_header.name())
        .filter_map(|v| v.to_str().ok())
        .collect();
    Some(walk(
        peer,
        &web.forwarded_header.entries(&values),
        &web.trusted_proxies,
    ))
}

/// From the peer leftwards past trusted proxies: the first untrusted address. An entry that
/// names no address stops the walk at the proxy that wrote it (the client is unknown, and the
/// proxy is the last address known to be honest); a chain of trusted proxies only yields its
/// left-most entry.
fn walk(peer: IpAddr, chain: &[Option<IpAddr>], trusted: &[TrustedProxy]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|p| p.contains(ip));
    let mut client = peer;
    for entry in chain.iter().rev() {
        if !is_trusted(client) {
            break;
        }
        match entry {
            Some(ip) => client = *ip,
            None => break,
        }
    }
    client
}

/// An address as a node of either header: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`,
/// `[::1]:80` (IPv4-mapped IPv6 addresses become IPv4).
fn node_ip(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let ip = if let Ok(ip) = node.parse::<IpAddr>() {
        ip
    } else if let Ok(socket) = node.parse::<SocketAddr>() {
        socket.ip()
    } else {
        let inner = node.strip_prefix('[')?.strip_suffix(']')?;
        inner.parse::<std::net::Ipv6Addr>().ok()?.into()
    };
    Some(ip.to_canonical())
}

/// The `for` parameter of one `Forwarded` element (`for=1.2.3.4;proto=https`), unquoted.
fn forwarded_for(element: &str) -> Option<String> {
    split_outside_quotes(element, ';')
        .into_iter()
        .find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("for")
                .then(|| unquote(value.trim()))
        })
}

/// A token, or a quoted-string with its `\` escapes undone (RFC 9110 §5.6.4).
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Splits on `sep` outside quoted-strings (a quoted `for` may not hide a separator).
fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter()
            .map(|p| TrustedProxy::parse(p).unwrap())
            .collect()
    }

    fn client(header: ForwardedHeader, peer: &str, values: &[&str], trusted: &[&str]) -> IpAddr {
        walk(ip(peer), &header.entries(values), &proxies(trusted))
    }

    #[test]
    fn nodes_with_or_without_ports_and_brackets() {
        for (node, expected) in [
            ("203.0.113.7", "203.0.113.7"),
            ("203.0.113.7:4711", "203.0.113.7"),
            (" 203.0.113.7 ", "203.0.113.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
        ] {
            assert_eq!(node_ip(node), Some(ip(expected)), "{node}");
        }
        for bad in [
            "unknown",
            "_hidden",
            "",
            "203.0.113.7:",
            "[203.0.113.7]",
            "1.2.3",
        ] {
            assert_eq!(node_ip(bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_elements_and_their_for_parameter() {
        let values = [
            r#"for=192.0.2.43, FOR="[2001:db8:cafe::17]:4711";proto=http;by=203.0.113.43"#,
            r#"proto=https;for="198.51.100.9:80", for=unknown, by=10.0.0.1"#,
            r#"for="203.0.113.5\"x, for=6.6.6.6""#,
        ];
        assert_eq!(
            ForwardedHeader::Forwarded.entries(&values),
            vec![
                Some(ip("192.0.2.43")),
                Some(ip("2001:db8:cafe::17")),
                Some(ip("198.51.100.9")),
                None,
                None,
                None,
            ]
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let c = client(
            ForwardedHeader::XForwardedFor,
            "198.51.100.1",
            &["1.1.1.1"],
            &["10.0.0.0/8"],
        );
        assert_eq!(c, ip("198.51.100.1"));
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client_with_or_without_ports() {
        // The attacker sends `X-Forwarded-For: 1.1.1.1`; the proxy appends `ip:port`.
        for appended in [
            "203.0.113.7:51234",
            "203.0.113.7",
            "[::ffff:203.0.113.7]:80",
        ] {
            let value = format!("1.1.1.1, {appended}");
            let c = client(
                ForwardedHeader::XForwardedFor,
                "10.0.0.2",
                &[&value],
                &["10.0.0.0/8"],
            );
            assert_eq!(c, ip("203.0.113.7"), "{value}");
        }
        // Two proxies, and repeated header lines read in order.
        let c = client(
            ForwardedHeader::XForwardedFor,
            "10.0.0.2",
            &["1.1.1.1, 203.0.113.7", "10.0.0.9:443"],
            &["10.0.0.0/8"],
        );
        assert_eq!(c, ip("203.0.113.7"));
        let c = client(
            ForwardedHeader::Forwarded,
            "2001:db8::2",
            &[r#"for=1.1.1.1, for="[2001:db8:1::7]:4711", for="[2001:db8::9]""#],
            &["2001:db8::/64"],
        );
        assert_eq!(c, ip("2001:db8:1::7"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let entries = ForwardedHeader::XForwardedFor.entries(&[]);
        assert_eq!(
            walk(ip("10.0.0.2"), &entries, &proxies(&["10.0.0.0/8"])),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn an_unreadable_entry_stops_at_the_proxy_that_wrote_it() {
        let c = client(
            ForwardedHeader::XForwardedFor,
            "10.0.0.2",
            &["1.1.1.1, unknown, 10.0.0.7"],
            &["10.0.0.0/8"],
        );
        assert_eq!(c, ip("10.0.0.7"));
    }

    #[test]
    fn a_chain_of_trusted_proxies_yields_its_left_most_entry() {
        let c = client(
            ForwardedHeader::XForwardedFor,
            "10.0.0.2",
            &["10.0.0.5, 10.0.0.6"],
            &["10.0.0.0/8"],
        );
        assert_eq!(c, ip("10.0.0.5"));
    }
}
