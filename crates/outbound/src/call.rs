//! A request description ([`Call`]) and a successful answer ([`Reply`]).

use crate::error::CallError;
use base64::Engine as _;
use bytes::Bytes;
use portal_domain::secret::{ExposeSecret, SecretString};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use url::Url;

/// One logical request to a downstream service. Its `Debug` shows the method, operation and
/// path, never headers, query values or the body.
pub struct Call {
    pub(crate) operation: &'static str,
    pub(crate) method: Method,
    pub(crate) url: Url,
    /// Deadline of each attempt, from sending to the last body byte.
    pub(crate) timeout: Duration,
    /// Whether the call may be retried; GET and PUT by default, never POST.
    pub(crate) retryable: bool,
    pub(crate) headers: HeaderMap,
    /// Content type and bytes; `Bytes` so each retry resends without copying.
    pub(crate) body: Option<(HeaderValue, Bytes)>,
    /// Set when building the request failed; reported by `send` without calling.
    pub(crate) invalid: Option<String>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("operation", &self.operation)
            .field("method", &self.method)
            .field("path", &self.url.path())
            .field("timeout", &self.timeout)
            .field("retryable", &self.retryable)
            .finish_non_exhaustive()
    }
}

impl Call {
    /// Default per-attempt deadline when none is set.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A call; `operation` names it in logs and metrics (e.g. `"get_tenant"`).
    pub fn new(method: Method, operation: &'static str, url: Url) -> Self {
        let retryable = method == Method::GET || method == Method::PUT;
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        Self {
            operation,
            method,
            url,
            timeout: Self::DEFAULT_TIMEOUT,
            retryable,
            headers,
            body: None,
            invalid: None,
        }
    }

    /// A GET (idempotent: retried).
    pub fn get(operation: &'static str, url: Url) -> Self {
        Self::new(Method::GET, operation, url)
    }

    /// A POST (never retried).
    pub fn post(operation: &'static str, url: Url) -> Self {
        Self::new(Method::POST, operation, url)
    }

    /// A PUT (idempotent: retried).
    pub fn put(operation: &'static str, url: Url) -> Self {
        Self::new(Method::PUT, operation, url)
    }

    /// Sets the per-attempt deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Forbids retries (for a GET or PUT that is not safe to repeat).
    pub fn no_retry(mut self) -> Self {
        self.retryable = false;
        self
    }

    /// Appends query parameters (percent-encoded).
    pub fn query<'a>(mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        {
            let mut q = self.url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
        }
        self
    }

    /// Adds a non-secret header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// `Authorization: Bearer <token>`, marked sensitive.
    pub fn bearer(self, token: &SecretString) -> Self {
        let value = format!("Bearer {}", token.expose_secret());
        self.authorization(value)
    }

    /// `Authorization: Basic base64(user:password)`, marked sensitive.
    pub fn basic_auth(self, user: &str, password: &SecretString) -> Self {
        let raw = format!("{user}:{}", password.expose_secret());
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        self.authorization(value)
    }

    fn authorization(mut self, value: String) -> Self {
        match HeaderValue::from_str(&value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                self.headers.insert(AUTHORIZATION, v);
            }
            // The value is secret: say what is wrong, not what it was.
            Err(_) => {
                self.invalid = Some("credentials contain characters not allowed in a header".into())
            }
        }
        self
    }

    /// A JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Some((
                    HeaderValue::from_static("application/json"),
                    Bytes::from(bytes),
                ))
            }
            Err(_) => self.invalid = Some("body could not be serialised".into()),
        }
        self
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form<'a>(mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            ser.append_pair(k, v);
        }
        self.body = Some((
            HeaderValue::from_static("application/x-www-form-urlencoded"),
            Bytes::from(ser.finish()),
        ));
        self
    }
}

/// A 2xx answer with its body read in full (within the cap).
pub struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Reply {
    /// The status (2xx).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Decodes the body as JSON; a mismatch is [`CallError::Malformed`] naming `what`.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, CallError> {
        serde_json::from_slice(&self.body).map_err(|e| CallError::malformed(what, &e))
    }

    /// Decodes a body that may be wrapped as `{"data": {...}}` or bare: when the top level is
    /// an object whose `data` member is an object, that member is decoded.
    pub fn json_data<T: DeserializeOwned>(&self, what: &str) -> Result<T, CallError> {
        let mut value: serde_json::Value = self.json(what)?;
        let inner = match value.get_mut("data") {
            Some(data) if data.is_object() => data.take(),
            _ => value,
        };
        serde_json::from_value(inner).map_err(|e| CallError::malformed(what, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_domain::secret::secret;

    #[test]
    fn debug_hides_credentials_and_body() {
        let call = Call::post("exchange", Url::parse("http://x.test/a?code=zzz").unwrap())
            .bearer(&secret("tok-123"))
            .json(&serde_json::json!({"token": "code-456"}));
        let dbg = format!("{call:?}");
        assert!(!dbg.contains("tok-123") && !dbg.contains("code-456") && !dbg.contains("zzz"));
        assert!(!call.retryable, "a POST is never retried");
    }

    #[test]
    fn header_injection_in_a_token_is_refused() {
        let call =
            Call::get("p", Url::parse("http://x.test/").unwrap()).bearer(&secret("a\r\nX-Evil: 1"));
        assert!(call.invalid.is_some());
        assert!(!call.invalid.unwrap().contains("Evil"));
    }
}
