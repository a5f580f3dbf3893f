//! The wizard's inputs: one validating newtype per field, each the only statement of its rule.
//!
//! The HTTP layer parses every request field with these types (and documents each field's
//! limits from their constants), so the rule that refuses a value is the rule that describes
//! it. A value the downstream calls could not carry (a token with a line break in a header, a
//! phone number ID with a `/` in a URL path) cannot be constructed. Error messages never quote
//! the value.

use crate::model::Region;
use crate::secret::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One refused input, as returned in `details` of `VALIDATION_FAILED`: a field the
/// integration rejected (`clientSecret`), or an integration whose check failed (`genesys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The request field (`clientSecret`) or the integration (`genesys`).
    pub field: &'static str,
    /// What is wrong; never contains the value itself.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Length in characters within `min..=max`, and only visible ASCII (safe in a header and a
/// form body). `what` names the value in the message.
fn visible_ascii(value: &str, what: &str, min: usize, max: usize) -> Result<(), String> {
    let len_ok = (min..=max).contains(&value.chars().count());
    if len_ok && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!(
            "{what} must be {min}-{max} visible ASCII characters"
        ))
    }
}

/// A company name: 2-100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CompanyName(String);

impl CompanyName {
    /// Shortest name, in characters.
    pub const MIN_CHARS: usize = 2;
    /// Longest name, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Validates and trims the name.
    pub fn parse(raw: impl Into<String>) -> Result<Self, String> {
        let raw = raw.into();
        let name = raw.trim();
        let len = name.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&len) {
            return Err(format!(
                "Company name must be between {}-{} characters",
                Self::MIN_CHARS,
                Self::MAX_CHARS
            ));
        }
        if name.chars().any(char::is_control) {
            return Err("Company name must not contain control characters".into());
        }
        Ok(Self(name.to_owned()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CompanyName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<CompanyName> for String {
    fn from(n: CompanyName) -> String {
        n.0
    }
}

impl fmt::Display for CompanyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Genesys OAuth client ID: 10-100 visible ASCII characters (it goes into a Basic header).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    /// Shortest ID, in characters.
    pub const MIN_CHARS: usize = 10;
    /// Longest ID, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Validates the ID.
    pub fn parse(raw: impl Into<String>) -> Result<Self, String> {
        let raw = raw.into();
        visible_ascii(&raw, "Client ID", Self::MIN_CHARS, Self::MAX_CHARS)?;
        Ok(Self(raw))
    }
    /// The ID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientId")
            .field(&crate::secret::mask(&self.0))
            .finish()
    }
}

/// A Genesys OAuth client secret: 10-200 visible ASCII characters. Never logged or echoed.
#[derive(Debug, Clone)]
pub struct ClientSecret(SecretString);

impl ClientSecret {
    /// Shortest secret, in characters.
    pub const MIN_CHARS: usize = 10;
    /// Longest secret, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Validates the secret.
    pub fn parse(raw: SecretString) -> Result<Self, String> {
        visible_ascii(
            raw.expose_secret(),
            "Client secret",
            Self::MIN_CHARS,
            Self::MAX_CHARS,
        )?;
        Ok(Self(raw))
    }
    /// The secret.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// A Meta phone number ID: 1-64 ASCII digits. Meta's IDs are numeric, and the value goes into
/// a URL path, so nothing else is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumberId(String);

impl PhoneNumberId {
    /// Shortest ID, in characters.
    pub const MIN_CHARS: usize = 1;
    /// Longest ID, in characters.
    pub const MAX_CHARS: usize = 64;
    /// The rule as a regular expression (with the length bounds), for documentation.
    pub const PATTERN: &'static str = "^[0-9]+$";

    /// Validates the ID.
    pub fn parse(raw: impl Into<String>) -> Result<Self, String> {
        let raw = raw.into();
        let len_ok = (Self::MIN_CHARS..=Self::MAX_CHARS).contains(&raw.len());
        if len_ok && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw))
        } else {
            Err(format!(
                "Phone number ID must be {}-{} digits",
                Self::MIN_CHARS,
                Self::MAX_CHARS
            ))
        }
    }
    /// The ID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Meta system-user token: 10-1024 visible ASCII characters (it goes into an
/// `Authorization` header). Never logged or echoed.
#[derive(Debug, Clone)]
pub struct SystemUserToken(SecretString);

impl SystemUserToken {
    /// Shortest token, in characters.
    pub const MIN_CHARS: usize = 10;
    /// Longest token, in characters.
    pub const MAX_CHARS: usize = 1024;

    /// Validates the token.
    pub fn parse(raw: SecretString) -> Result<Self, String> {
        visible_ascii(
            raw.expose_secret(),
            "System-user token",
            Self::MIN_CHARS,
            Self::MAX_CHARS,
        )?;
        Ok(Self(raw))
    }
    /// The token.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// Step 2's input: Genesys client credentials for a region.
#[derive(Debug)]
pub struct GenesysCredentials {
    /// The OAuth client.
    pub client_id: ClientId,
    /// Its secret.
    pub client_secret: ClientSecret,
    /// The org's region.
    pub region: Region,
}

/// Step 3's input: a WhatsApp phone number ID and a Meta system-user token.
#[derive(Debug)]
pub struct WhatsAppCredentials {
    /// The number.
    pub phone_number_id: PhoneNumberId,
    /// The token.
    pub system_user_token: SystemUserToken,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::secret;

    #[test]
    fn each_rule_holds_at_its_bounds() {
        assert!(CompanyName::parse("NC").is_ok());
        assert!(CompanyName::parse("N".repeat(100)).is_ok());
        assert!(CompanyName::parse(" N ").is_err(), "trimmed first");
        assert!(CompanyName::parse("N".repeat(101)).is_err());
        assert!(CompanyName::parse("New\u{7}Co").is_err());
        assert!(serde_json::from_str::<CompanyName>("\"A\"").is_err());

        assert!(ClientId::parse("c".repeat(10)).is_ok());
        assert!(ClientId::parse("c".repeat(9)).is_err());
        assert!(ClientId::parse("c".repeat(101)).is_err());
        assert!(ClientId::parse("client id 01").is_err(), "no spaces");

        assert!(ClientSecret::parse(secret("s".repeat(200))).is_ok());
        assert!(ClientSecret::parse(secret("s".repeat(201))).is_err());

        for (id, ok) in [
            ("1065550100", true),
            ("1", true),
            ("", false),
            ("12ab", false),
            ("12/../34", false),
        ] {
            assert_eq!(PhoneNumberId::parse(id).is_ok(), ok, "{id:?}");
        }
        assert!(PhoneNumberId::parse("1".repeat(64)).is_ok());
        assert!(PhoneNumberId::parse("1".repeat(65)).is_err());

        assert!(SystemUserToken::parse(secret("t".repeat(1024))).is_ok());
        assert!(SystemUserToken::parse(secret("token with\nnewline")).is_err());
    }

    #[test]
    fn refusals_and_debug_never_show_a_secret() {
        let e = ClientSecret::parse(secret("tiny")).unwrap_err();
        assert!(!e.contains("tiny"), "{e}");
        let e = SystemUserToken::parse(secret("tiny")).unwrap_err();
        assert!(!e.contains("tiny"), "{e}");
        let c = GenesysCredentials {
            client_id: ClientId::parse("client-id-0001").unwrap(),
            client_secret: ClientSecret::parse(secret("genesys-client-secret-0001")).unwrap(),
            region: Region::EuWest1,
        };
        let debug = format!("{c:?}");
        assert!(!debug.contains("genesys-client-secret-0001"), "{debug}");
        assert!(!debug.contains("client-id-0001"), "{debug}");
    }
}
