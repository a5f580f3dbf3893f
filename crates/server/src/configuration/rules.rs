//! garde's custom rules of single settings (and the list syntax they share).

use portal_domain::model::Region;
use portal_domain::secret::{ExposeSecret, SecretString};

pub(super) fn one_of(
    allowed: &'static [&'static str],
) -> impl FnOnce(&String, &()) -> garde::Result {
    move |value, _| {
        if allowed.contains(&value.as_str()) {
            Ok(())
        } else {
            Err(garde::Error::new(format!(
                "must be one of {}",
                allowed.join(", ")
            )))
        }
    }
}

pub(super) fn valid_region(value: &str, _: &()) -> garde::Result {
    value
        .parse::<Region>()
        .map(|_| ())
        .map_err(|_| garde::Error::new(format!("must be one of {}", Region::names())))
}

pub(super) fn hex_key_rule(value: &Option<SecretString>, _: &()) -> garde::Result {
    match value {
        Some(k) => {
            let k = k.expose_secret();
            if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(())
            } else {
                Err(garde::Error::new("must be 64 hexadecimal characters"))
            }
        }
        None => Ok(()),
    }
}

/// A key id as the cipher accepts it: 1-32 of `A-Z a-z 0-9 _ -`.
pub(super) fn is_key_id(value: &str) -> bool {
    (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(super) fn key_id_rule(value: &str, _: &()) -> garde::Result {
    if is_key_id(value) {
        Ok(())
    } else {
        Err(garde::Error::new(
            "must be 1-32 characters of A-Z a-z 0-9 _ -",
        ))
    }
}

pub(super) fn is_hex_key(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `kid:hex` pairs; the problems name entries by position, never by content.
pub(super) fn previous_keys_rule(value: &Option<SecretString>, _: &()) -> garde::Result {
    let Some(value) = value else { return Ok(()) };
    let bad: Vec<String> = split_list(value.expose_secret())
        .enumerate()
        .filter(|(_, entry)| match entry.split_once(':') {
            Some((kid, key)) => !is_key_id(kid.trim()) || !is_hex_key(key.trim()),
            None => true,
        })
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(garde::Error::new(format!(
            "entries must read kid:<64 hex characters>; not so: entry {}",
            bad.join(", ")
        )))
    }
}

/// Every byte (hex pair) the same, e.g. all zeros: a placeholder, not a key.
pub(super) fn is_repeated_byte_key(hex_key: &str) -> bool {
    let lower = hex_key.to_ascii_lowercase();
    let first = lower.get(..2).unwrap_or_default();
    lower.len() >= 2 && lower.as_bytes().chunks(2).all(|c| c == first.as_bytes())
}

pub(super) fn audit_key_rule(value: &Option<SecretString>, _: &()) -> garde::Result {
    match value {
        Some(s) if s.expose_secret().len() < 32 => {
            Err(garde::Error::new("must be at least 32 characters"))
        }
        _ => Ok(()),
    }
}

/// One character repeated: a placeholder, not a secret.
pub(super) fn is_placeholder(secret: &str) -> bool {
    secret.chars().all(|c| secret.starts_with(c))
}

pub(super) fn cookie_secret_rule(value: &Option<SecretString>, _: &()) -> garde::Result {
    match value {
        Some(s) if s.expose_secret().len() < 32 => {
            Err(garde::Error::new("must be at least 32 characters"))
        }
        _ => Ok(()),
    }
}

pub(super) fn proxies_rule(value: &str, _: &()) -> garde::Result {
    let bad: Vec<&str> = split_list(value)
        .filter(|p| portal_api::TrustedProxy::parse(p).is_none())
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(garde::Error::new(format!(
            "not an IP address or CIDR network: {}",
            bad.join(", ")
        )))
    }
}

pub(super) fn forwarded_header_rule(value: &str, _: &()) -> garde::Result {
    match portal_api::ForwardedHeader::parse(value) {
        Some(_) => Ok(()),
        None => Err(garde::Error::new("must be x-forwarded-for or forwarded")),
    }
}

pub(super) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}
