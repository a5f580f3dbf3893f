//! Sessions (spec §4.2.1, decisions §4).

use super::{ClientInfo, Email, Role, TenantId, UserId};
use crate::secret::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

/// A session identifier: 256 random bits, base64url without padding (43 characters).
///
/// It lives only in the browser's signed cookie. Stores never see it: they are keyed by its
/// [`SessionKey`].
pub struct SessionId(SecretString);

impl SessionId {
    /// Length of the encoded ID.
    pub(crate) const ENCODED_LEN: usize = 43;

    /// Wraps an ID read from a cookie, after checking its shape (not its existence).
    pub fn parse(raw: &str) -> Option<Self> {
        let well_formed = raw.len() == Self::ENCODED_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(SecretString::from(raw.to_owned())))
    }

    /// Builds an ID from 32 random bytes.
    pub fn from_random(bytes: [u8; 32]) -> Self {
        Self(SecretString::from(crate::crypto::b64url(&bytes)))
    }

    /// The cookie value. Only the cookie writer should call this.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The key under which stores keep this session: hex SHA-256 of the ID.
    pub fn key(&self) -> SessionKey {
        SessionKey(crate::crypto::sha256_hex(self.0.expose_secret().as_bytes()))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId([REDACTED])")
    }
}

/// The store key of a session: the hex SHA-256 of its [`SessionId`]. Safe to log in part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionKey(String);

impl SessionKey {
    /// Wraps an already-hashed key (as read back from a store index).
    pub fn from_hex(hex: impl Into<String>) -> Self {
        Self(hex.into())
    }
    /// The 64 hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// A short prefix for log lines.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(8)]
    }
}

/// An encrypted value as produced by the [`Cipher`](crate::ports::system::Cipher) port.
///
/// Opaque text: `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. Safe to store; useless
/// without the key, and bound to the context (tenant and field) it was encrypted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ciphertext(pub String);

/// An authenticated user's session, as stored (spec §4.2.1 plus the decisions' fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Genesys user ID.
    pub user_id: UserId,
    /// The user's tenant; `None` before onboarding step 1 binds one.
    pub tenant_id: Option<TenantId>,
    /// Role within the tenant.
    pub role: Role,
    /// E-mail address.
    pub email: Email,
    /// Display name.
    pub name: String,
    /// True while the tenant has not finished onboarding: the session may only use the
    /// onboarding wizard (decisions §4).
    #[serde(default)]
    pub onboarding_only: bool,
    /// When the session was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Absolute expiry (24 h after sign-in, extended by refresh).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Last request seen; written at most once a minute.
    #[serde(with = "time::serde::rfc3339")]
    pub last_activity: OffsetDateTime,
    /// The user's Auth Service refresh token, encrypted (never stored in plain text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Ciphertext>,
    /// When the tokens were last refreshed (a refresh within a few seconds of another returns
    /// the session as that one left it, instead of redeeming the new refresh token again).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub refreshed_at: Option<OffsetDateTime>,
    /// The device it was signed in from (user agent, network), for the user's session list.
    #[serde(default)]
    pub client: ClientInfo,
}

impl Session {
    /// Whether the session is past its absolute expiry at `now`.
    pub(crate) fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }

    /// The tenant the session may act for, when it has finished onboarding.
    pub(crate) fn active_tenant(&self) -> Option<TenantId> {
        if self.onboarding_only {
            None
        } else {
            self.tenant_id
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_shape_is_checked_and_debug_redacts() {
        let id = SessionId::from_random([7u8; 32]);
        assert_eq!(id.expose().len(), SessionId::ENCODED_LEN);
        assert!(SessionId::parse(id.expose()).is_some());
        assert!(SessionId::parse("short").is_none());
        assert!(SessionId::parse(&"a".repeat(42)).is_none());
        assert!(SessionId::parse(&format!("{}!", &id.expose()[..42])).is_none());
        assert_eq!(format!("{id:?}"), "SessionId([REDACTED])");
    }

    #[test]
    fn session_key_is_the_sha256_of_the_id_not_the_id() {
        let id = SessionId::from_random([1u8; 32]);
        let key = id.key();
        assert_eq!(key.as_str().len(), 64);
        assert!(!key.as_str().contains(id.expose()));
        assert_eq!(key, SessionId::parse(id.expose()).unwrap().key());
    }
}
