//! Users, their roles and e-mail addresses.

use super::{TenantId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A user's role within their tenant (decisions §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including onboarding.
    Admin,
    /// Dashboard, history, widget send, monitoring.
    Agent,
    /// Dashboard, history, monitoring.
    Viewer,
}

impl Role {
    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Viewer => "viewer",
        }
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "admin" => Ok(Role::Admin),
            "agent" => Ok(Role::Agent),
            "viewer" => Ok(Role::Viewer),
            _ => Err(()),
        }
    }
}

/// An e-mail address failed validation.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("must be a valid e-mail address")]
pub struct EmailError;

/// A syntactically valid e-mail address (local@domain.tld, at most 254 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Longest address, in characters.
    pub const MAX_CHARS: usize = 254;
    /// Longest local part (before the `@`), in characters.
    pub const MAX_LOCAL_CHARS: usize = 64;

    /// Validates the address: at most 254 characters, one `@`, a local part of 1-64
    /// characters, a domain of two or more non-empty labels, no white space or control
    /// characters.
    pub fn parse(s: impl Into<String>) -> Result<Self, EmailError> {
        let s = s.into();
        let valid = s.chars().count() <= Self::MAX_CHARS
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && local.chars().count() <= Self::MAX_LOCAL_CHARS
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                }
                None => false,
            };
        if valid { Ok(Self(s)) } else { Err(EmailError) }
    }
    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;
    fn try_from(s: String) -> Result<Self, EmailError> {
        Self::parse(s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user as the Auth Service describes them (spec §3.1.1 `getUserProfile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    /// Genesys user ID.
    pub user_id: UserId,
    /// E-mail address.
    pub email: Email,
    /// Display name.
    pub name: String,
    /// The tenant the Auth Service knows the user by, if any. The Tenant Service is the
    /// authority; this is only a hint.
    #[serde(default)]
    pub tenant_id: Option<TenantId>,
    /// Role; the spec defaults a missing role to `agent`.
    #[serde(default = "default_role")]
    pub role: Role,
}

fn default_role() -> Role {
    Role::Agent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_validation() {
        for ok in [
            "a@b.co",
            "admin@acme.example",
            "first.last+tag@sub.example.org",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a@b.co.", "a b@c.de", "a@@b.co", "a@b..co",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn profile_without_role_defaults_to_agent() {
        let p: UserProfile =
            serde_json::from_str(r#"{"userId":"u1","email":"u@x.example","name":"U"}"#).unwrap();
        assert_eq!(p.role, Role::Agent);
        assert_eq!(p.tenant_id, None);
    }
}
