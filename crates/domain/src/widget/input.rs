//! The validating newtypes of a send's input: each the only statement of its rule.

/// A message body: 1-4096 characters, not only white space ([`crate::model::WHITE_SPACE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(pub(super) String);

impl MessageText {
    /// Longest body, in characters.
    pub const MAX_CHARS: usize = 4096;

    /// Validates the body.
    pub fn parse(text: impl Into<String>) -> Result<Self, &'static str> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err("text must not be empty");
        }
        if text.chars().count() > Self::MAX_CHARS {
            return Err("text must be at most 4096 characters");
        }
        Ok(Self(text))
    }
    /// The body.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A media attachment URL the platform will fetch: at most 2048 characters, written as is
/// (no white space or control characters, which a URL parser would silently drop), starting
/// `https://`, no user name or password, and a public host: a domain name of two or more
/// labels (not `localhost`, nor under a special-use domain that never resolves publicly) or
/// a globally reachable IP address (no loopback, private, shared (CGNAT), link-local,
/// unique-local, documentation, multicast or reserved range). A name is not resolved here:
/// the fetcher must still refuse a name that resolves to such an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUrl(pub(super) String);

impl MediaUrl {
    /// Longest URL, in characters.
    pub const MAX_CHARS: usize = 2048;
    /// The scheme and separator every URL starts with (in any case).
    pub const PREFIX: &'static str = "https://";

    /// Domains that never name a public host: RFC 6761 (`localhost`, `invalid`), RFC 6762
    /// (`local`), RFC 8375 (`home.arpa`), ICANN's `internal`.
    pub const PRIVATE_DOMAINS: [&'static str; 5] =
        ["localhost", "local", "internal", "home.arpa", "invalid"];

    /// Validates the URL.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err("mediaUrl must be at most 2048 characters");
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("mediaUrl must not contain white space or control characters");
        }
        let https = raw
            .get(..Self::PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(Self::PREFIX));
        if !https {
            return Err("mediaUrl must be an https URL");
        }
        let url = url::Url::parse(raw).map_err(|_| "mediaUrl must be a valid URL")?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("mediaUrl must not contain a user name or password");
        }
        let public = match url.host() {
            Some(url::Host::Domain(name)) => is_public_name(name),
            Some(url::Host::Ipv4(ip)) => is_public_ipv4(ip),
            Some(url::Host::Ipv6(ip)) => is_public_ipv6(ip),
            None => false,
        };
        if !public {
            return Err(
                "mediaUrl must name a public host (no localhost, private or reserved address)",
            );
        }
        Ok(Self(url.to_string()))
    }
    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A name with at least two labels outside [`MediaUrl::PRIVATE_DOMAINS`].
fn is_public_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let private = MediaUrl::PRIVATE_DOMAINS
        .iter()
        .any(|d| name == *d || name.ends_with(&format!(".{d}")));
    !private && name.contains('.') && !name.split('.').any(str::is_empty)
}

/// Globally reachable (the IANA special-purpose registry's ranges excluded).
fn is_public_ipv4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0 // "this network"
        || a == 10 // private
        || a == 127 // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168) // private
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224; // multicast, reserved, broadcast
    !special
}

/// Globally reachable: global unicast `2000::/3` outside its special ranges; an IPv4 address
/// embedded by mapping, translation (NAT64) or 6to4 is judged as IPv4.
fn is_public_ipv6(ip: std::net::Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_ipv4(v4);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_ipv4(std::net::Ipv4Addr::from(
            (u32::from(s[6]) << 16) | u32::from(s[7]),
        ));
    }
    if s[0] == 0x2002 {
        return is_public_ipv4(std::net::Ipv4Addr::from(
            (u32::from(s[1]) << 16) | u32::from(s[2]),
        ));
    }
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    // 2001::/23: IETF protocol assignments (Teredo, ORCHID, ...); 2001:db8::/32 and
    // 3fff::/20: documentation (RFC 3849, RFC 9637).
    let special = (s[0] == 0x2001 && (s[1] < 0x200 || s[1] == 0xdb8)) || (s[0] & 0xfff0) == 0x3ff0;
    global_unicast && !special
}

/// A client-chosen idempotency key: 1-128 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub(super) String);

impl IdempotencyKey {
    /// Validates the key.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > 128 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("idempotency key must be 1-128 visible ASCII characters");
        }
        Ok(Self(raw.to_owned()))
    }
}
