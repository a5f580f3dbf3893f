//! The validating newtypes of a send's input: each the only statement of its rule.

/// A message body: 1-4096 characters, not only white space.
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

/// A media attachment URL: absolute `https`, at most 2048 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUrl(pub(super) String);

impl MediaUrl {
    /// Validates the URL.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.len() > 2048 {
            return Err("mediaUrl must be at most 2048 characters");
        }
        match url::Url::parse(raw) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => {
                Ok(Self(u.to_string()))
            }
            Ok(_) => Err("mediaUrl must be an https URL"),
            Err(_) => Err("mediaUrl must be a valid URL"),
        }
    }
    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
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
