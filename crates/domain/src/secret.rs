//! Secret-bearing values.
//!
//! Every secret the service handles (client secrets, system-user tokens, OAuth codes and tokens,
//! session IDs, webhook secrets) travels as a [`SecretString`]: its `Debug` prints
//! `[REDACTED]`, it has no `Display`, and its memory is zeroed on drop. Reading the value
//! requires an explicit `expose_secret()`, which makes every use greppable.

pub use secrecy::{ExposeSecret, SecretBox, SecretString};

/// Builds a [`SecretString`] from anything string-like.
pub fn secret(value: impl Into<String>) -> SecretString {
    SecretString::from(value.into())
}

/// Masks a non-secret but sensitive identifier for logs: keeps a short prefix.
///
/// `mask("client_abcdef123")` → `"clie…"`. Never use it on real secrets: those are not logged
/// at all.
pub fn mask(value: &str) -> String {
    let prefix: String = value.chars().take(4).collect();
    format!("{prefix}…")
}
