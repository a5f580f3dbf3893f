//! Who is on the other end of a request: its client IP, user agent and correlation ID
//! ([`RequestContext`], what the audit trail records), and the part of it a session keeps to
//! show the user where they are signed in ([`ClientInfo`]: the agent trimmed, the address
//! truncated to its network).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The longest user agent kept (characters); longer ones are cut.
pub const USER_AGENT_MAX_CHARS: usize = 256;
/// The longest correlation ID kept (the edge accepts up to 128).
const CORRELATION_ID_MAX_CHARS: usize = 128;

/// What the edge knows about the request being served. Every part is optional: a request
/// may come without a user agent, and tests or background work have no request at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The client's IP (the peer, or the forwarded address behind trusted proxies).
    pub client_ip: Option<IpAddr>,
    /// The `User-Agent` header, cleaned ([`clean_user_agent`]).
    pub user_agent: Option<String>,
    /// The request's ID (`X-Request-ID`), which error bodies call `correlationId`.
    pub correlation_id: Option<String>,
}

impl RequestContext {
    /// A context from the raw parts, each cleaned.
    pub fn new(
        client_ip: Option<IpAddr>,
        user_agent: Option<&str>,
        correlation_id: Option<&str>,
    ) -> Self {
        Self {
            client_ip,
            user_agent: user_agent.and_then(clean_user_agent),
            correlation_id: correlation_id
                .map(|c| printable(c, CORRELATION_ID_MAX_CHARS))
                .filter(|c| !c.is_empty()),
        }
    }

    /// What a session keeps of it.
    pub fn client_info(&self) -> ClientInfo {
        ClientInfo {
            user_agent: self.user_agent.clone(),
            network: self.client_ip.map(truncate_ip),
        }
    }
}

/// The device a session was signed in from, as the user sees it in their session list: never
/// more precise than needed to recognise it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    /// The user agent, trimmed to [`USER_AGENT_MAX_CHARS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The client's network: the IPv4 address truncated to its /24 (`203.0.113.0/24`), the
    /// IPv6 one to its /48 (`2001:db8:1234::/48`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// A user agent as kept: printable characters only, trimmed, at most
/// [`USER_AGENT_MAX_CHARS`]; `None` when nothing is left.
pub fn clean_user_agent(raw: &str) -> Option<String> {
    let s = printable(raw, USER_AGENT_MAX_CHARS);
    (!s.is_empty()).then_some(s)
}

fn printable(raw: &str, max: usize) -> String {
    raw.chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// An address as its network: IPv4 to the /24, IPv6 to the /48 (an IPv4-mapped IPv6 address
/// counts as IPv4).
pub fn truncate_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => truncate_ip(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                format!("{net}/48")
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_truncated_to_their_network() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(truncate_ip(ip("203.0.113.77")), "203.0.113.0/24");
        assert_eq!(
            truncate_ip(ip("2001:db8:1234:5678::9")),
            "2001:db8:1234::/48"
        );
        assert_eq!(truncate_ip(ip("::ffff:198.51.100.7")), "198.51.100.0/24");
        assert_eq!(truncate_ip(ip("::1")), "::/48");
    }

    #[test]
    fn user_agents_are_cleaned_and_trimmed() {
        assert_eq!(
            clean_user_agent("  Mozilla/5.0\n "),
            Some("Mozilla/5.0".into())
        );
        assert_eq!(clean_user_agent("\u{7}\t"), None);
        let long = "a".repeat(1000);
        assert_eq!(
            clean_user_agent(&long).unwrap().chars().count(),
            USER_AGENT_MAX_CHARS
        );
        let ctx = RequestContext::new(
            Some("10.1.2.3".parse().unwrap()),
            Some("curl/8"),
            Some("req-1"),
        );
        assert_eq!(
            ctx.client_info(),
            ClientInfo {
                user_agent: Some("curl/8".into()),
                network: Some("10.1.2.0/24".into()),
            }
        );
    }
}
