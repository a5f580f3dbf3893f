//! Identifiers. Tenant and conversation IDs are UUIDs, as in production.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// An identifier failed validation.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// Not a UUID.
    #[error("must be a UUID")]
    NotUuid,
    /// Empty or longer than 128 characters, or containing control characters.
    #[error("must be 1-128 printable characters")]
    BadLength,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

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
                Uuid::parse_str(s).map(Self).map_err(|_| IdError::NotUuid)
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
    fn user_id_refuses_empty_long_and_control_characters() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a".repeat(129)).is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert_eq!(UserId::parse("user-1").unwrap().as_str(), "user-1");
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
    }
}
