//! Identifiers. Tenant and conversation IDs are UUIDs, as in production, written in the one
//! canonical form ([`parse_canonical_uuid`]).

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// An identifier failed validation.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// Not a UUID in its canonical form.
    #[error("must be a UUID (36 characters: 8-4-4-4-12 hexadecimal digits)")]
    NotUuid,
    /// Empty or longer than 128 characters, or containing control characters.
    #[error("must be 1-128 printable characters")]
    BadLength,
}

/// The canonical form of a UUID (RFC 9562 §4): groups of this many hexadecimal digits (either
/// case), joined by hyphens. The only spelling the ID types accept; the OpenAPI document states
/// it as a pattern built from this list.
pub const UUID_GROUPS: [usize; 5] = [8, 4, 4, 4, 12];

/// Parses a UUID in its canonical form only ([`UUID_GROUPS`]). The other spellings `uuid`
/// accepts (the 32-digit simple form, `{braced}`, `urn:uuid:`) are refused, so one ID has one
/// spelling in paths, queries, bodies, logs and store keys.
fn parse_canonical_uuid(s: &str) -> Result<Uuid, IdError> {
    let mut groups = s.split('-');
    let shape = UUID_GROUPS.iter().all(|len| {
        groups
            .next()
            .is_some_and(|g| g.len() == *len && g.bytes().all(|b| b.is_ascii_hexdigit()))
    }) && groups.next().is_none();
    if !shape {
        return Err(IdError::NotUuid);
    }
    Uuid::try_parse(s).map_err(|_| IdError::NotUuid)
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        /// From its canonical text only (the same rule as [`FromStr`]).
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl $name {
            /// Wraps a UUID.
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            /// A new random (v4) ID.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                parse_canonical_uuid(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A tenant (a business using the integration).
    TenantId
);
uuid_id!(
    /// A WhatsApp conversation, owned by one tenant.
    ConversationId
);

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates: 1-128 characters, no control characters.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                if s.is_empty() || s.chars().count() > 128 || s.chars().any(char::is_control) {
                    return Err(IdError::BadLength);
                }
                Ok(Self(s))
            }
            /// The ID as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A Genesys Cloud user, as the Auth Service names it.
    UserId
);
string_id!(
    /// A message, as the State Manager (or this service, for widget sends) names it.
    MessageId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_id_round_trips_through_text_and_json() {
        let id = TenantId::new_random();
        assert_eq!(id.to_string().parse::<TenantId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
    }

    #[test]
    fn non_uuid_tenant_id_is_refused() {
        assert_eq!("tenant_123".parse::<TenantId>(), Err(IdError::NotUuid));
    }

    #[test]
    fn only_the_canonical_spelling_of_a_uuid_is_an_id() {
        let canonical = "7c0e4b52-1a3f-4d6e-8a90-3c1d5e00ac3e";
        let id: ConversationId = canonical.parse().unwrap();
        assert_eq!(id.to_string(), canonical);
        let upper: ConversationId = canonical.to_uppercase().parse().unwrap();
        assert_eq!(upper, id, "hexadecimal digits in either case");
        for other in [
            "7c0e4b521a3f4d6e8a903c1d5e00ac3e",
            "{7c0e4b52-1a3f-4d6e-8a90-3c1d5e00ac3e}",
            "urn:uuid:7c0e4b52-1a3f-4d6e-8a90-3c1d5e00ac3e",
            "7c0e4b52-1a3f-4d6e-8a90-3c1d5e00ac3e ",
            " 7c0e4b52-1a3f-4d6e-8a90-3c1d5e00ac3e",
            "7c0e4b52-1a3f4-d6e-8a90-3c1d5e00ac3e",
            "7c0e4b52-1a3f-4d6e-8a90-3c1d5e00ac3g",
            "",
        ] {
            assert_eq!(
                other.parse::<ConversationId>(),
                Err(IdError::NotUuid),
                "{other}"
            );
            assert_eq!(other.parse::<TenantId>(), Err(IdError::NotUuid), "{other}");
            let json = serde_json::to_string(other).unwrap();
            assert!(serde_json::from_str::<TenantId>(&json).is_err(), "{other}");
        }
        let from_json: TenantId = serde_json::from_str(&format!("\"{canonical}\"")).unwrap();
        assert_eq!(from_json.to_string(), canonical);
    }

    #[test]
    fn user_id_refuses_empty_long_and_control_characters() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a".repeat(129)).is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert_eq!(UserId::parse("user-1").unwrap().as_str(), "user-1");
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
    }
}
