//! Pure cryptographic computations: hashes, HMAC-derived tokens, PKCE, constant-time compare.
//!
//! Nothing here holds a key store or does I/O; encryption with rotating keys is the
//! [`Cipher`](crate::ports::system::Cipher) port's job.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{digest, hmac};
use subtle::ConstantTimeEq;

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// PKCE S256 code challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    b64url(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref())
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A keyed derivation of tokens from secrets: `base64url(HMAC-SHA256(key, purpose ‖ 0 ‖ input))`.
///
/// Used for the per-session CSRF token (derived from the session ID, so it needs no storage
/// and dies with the session).
#[derive(Clone)]
pub struct TokenDeriver {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenDeriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDeriver([REDACTED])")
    }
}

impl TokenDeriver {
    /// Builds a deriver from secret key material (at least 32 bytes recommended).
    pub fn new(key_material: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key_material),
        }
    }

    /// Derives the token for `input` under `purpose`.
    pub fn derive(&self, purpose: &str, input: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(input);
        b64url(ctx.sign().as_ref())
    }

    /// Checks a presented token in constant time.
    pub fn verify(&self, purpose: &str, input: &[u8], presented: &str) -> bool {
        constant_time_eq(self.derive(purpose, input).as_bytes(), presented.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn derived_tokens_depend_on_key_purpose_and_input() {
        let a = TokenDeriver::new(b"key-a-key-a-key-a-key-a-key-a-32");
        let b = TokenDeriver::new(b"key-b-key-b-key-b-key-b-key-b-32");
        let t = a.derive("csrf", b"session");
        assert!(a.verify("csrf", b"session", &t));
        assert!(!b.verify("csrf", b"session", &t));
        assert!(!a.verify("other", b"session", &t));
        assert!(!a.verify("csrf", b"session2", &t));
        assert!(!a.verify("csrf", b"session", ""));
    }
}
