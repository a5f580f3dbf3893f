//! Simulated Genesys Cloud and Meta WhatsApp Cloud APIs and their credential rules
//! (decisions §3): a secret or token starting with `invalid` is refused, other well-formed ones
//! are accepted.

use crate::auth::random_token;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portal_domain::DownstreamFailure;
use portal_domain::crypto::sha256_hex;
use portal_domain::model::Region;
use portal_domain::ports::downstream::{
    GenesysCloud, GenesysError, GenesysOrganization, GenesysToken, PhoneNumberInfo, WhatsApp,
    WhatsAppError,
};
use portal_domain::secret::{ExposeSecret, SecretString};

/// Prefix that makes a secret or token invalid in the simulation.
pub(crate) const INVALID_PREFIX: &str = "invalid";

/// Lifetime of a simulated Genesys token, in seconds.
pub(crate) const GENESYS_TOKEN_TTL_SECS: u64 = 86_400;

/// Meta's message for a refused token (what the Graph API answers with 401).
pub(crate) const META_INVALID_TOKEN: &str =
    "Invalid OAuth access token - Cannot parse access token (OAuthException, code 190)";

/// Genesys client credentials rule: `Err` carries Genesys's `invalid_client` description.
fn genesys_rule(client_id: &str, client_secret: &str) -> Result<(), String> {
    if client_id.trim().is_empty() || client_id.chars().any(char::is_whitespace) {
        return Err("invalid_client: unknown client ID".to_owned());
    }
    if client_secret.is_empty() || client_secret.starts_with(INVALID_PREFIX) {
        return Err("invalid_client: client authentication failed".to_owned());
    }
    Ok(())
}

/// Meta system-user token rule: `Err` carries Meta's `OAuthException` message.
fn whatsapp_token_rule(token: &str) -> Result<(), String> {
    if token.trim().is_empty() || token.starts_with(INVALID_PREFIX) {
        Err(META_INVALID_TOKEN.to_owned())
    } else {
        Ok(())
    }
}

/// Phone number IDs the simulated Meta knows: 6-20 ASCII digits.
fn phone_number_rule(phone_number_id: &str) -> Result<(), String> {
    let known = (6..=20).contains(&phone_number_id.len())
        && phone_number_id.bytes().all(|b| b.is_ascii_digit());
    if known {
        Ok(())
    } else {
        Err("phone number ID not found".to_owned())
    }
}

/// The simulated Genesys Cloud public API (client credentials and `organizations/me`).
///
/// Stateless: the token names the client it was issued to, so `organization` needs no store.
#[derive(Debug, Clone, Default)]
pub(crate) struct SimGenesys;

impl SimGenesys {
    /// A simulator.
    pub(crate) fn new() -> Self {
        Self
    }
}

const GENESYS_TOKEN_PREFIX: &str = "sim_genesys.";

#[async_trait]
impl GenesysCloud for SimGenesys {
    async fn client_credentials(
        &self,
        _region: Region,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<GenesysToken, GenesysError> {
        genesys_rule(client_id, client_secret.expose_secret())
            .map_err(GenesysError::InvalidClient)?;
        let random = random_token("").ok_or(DownstreamFailure::Unavailable { status: None })?;
        let token = format!(
            "{GENESYS_TOKEN_PREFIX}{}.{random}",
            URL_SAFE_NO_PAD.encode(client_id)
        );
        Ok(GenesysToken {
            access_token: SecretString::from(token),
            expires_in: GENESYS_TOKEN_TTL_SECS,
        })
    }

    async fn organization(
        &self,
        _region: Region,
        token: &SecretString,
    ) -> Result<GenesysOrganization, GenesysError> {
        let refused = || GenesysError::InvalidClient("invalid_token: token not recognised".into());
        let client_id = token
            .expose_secret()
            .strip_prefix(GENESYS_TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(client, _)| URL_SAFE_NO_PAD.decode(client).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(refused)?;
        let hash = sha256_hex(client_id.as_bytes());
        let id = uuid::Uuid::parse_str(&hash[..32])
            .map(|u| u.hyphenated().to_string())
            .unwrap_or(hash[..32].to_owned());
        Ok(GenesysOrganization {
            id,
            name: format!("Demo Organization {}", hash[..6].to_ascii_uppercase()),
        })
    }
}

/// The simulated Meta WhatsApp Cloud API (`GET /{phoneNumberId}`).
#[derive(Debug, Clone, Default)]
pub(crate) struct SimWhatsApp;

impl SimWhatsApp {
    /// A simulator.
    pub(crate) fn new() -> Self {
        Self
    }
}

#[async_trait]
impl WhatsApp for SimWhatsApp {
    async fn phone_number(
        &self,
        phone_number_id: &str,
        token: &SecretString,
    ) -> Result<PhoneNumberInfo, WhatsAppError> {
        // Meta checks the token before it looks at the number.
        whatsapp_token_rule(token.expose_secret()).map_err(WhatsAppError::InvalidToken)?;
        phone_number_rule(phone_number_id).map_err(|_| WhatsAppError::NotFound)?;
        let last4 = &phone_number_id[phone_number_id.len() - 4..];
        Ok(PhoneNumberInfo {
            id: phone_number_id.to_owned(),
            display_phone_number: format!("+1 555-{last4}"),
            verified_name: Some(format!("Demo Business {last4}")),
            quality_rating: Some("GREEN".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_domain::secret::secret;

    #[tokio::test]
    async fn genesys_refuses_invalid_secrets_like_invalid_client() {
        let g = SimGenesys::new();
        let err = g
            .client_credentials(Region::UsEast1, "client-1", &secret("invalid-secret-0001"))
            .await
            .unwrap_err();
        match err {
            GenesysError::InvalidClient(msg) => {
                assert!(msg.starts_with("invalid_client"));
                assert!(!msg.contains("invalid-secret-0001"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            g.client_credentials(Region::UsEast1, "", &secret("ok"))
                .await,
            Err(GenesysError::InvalidClient(_))
        ));
    }

    #[tokio::test]
    async fn genesys_accepts_other_secrets_and_names_an_org_per_client() {
        let g = SimGenesys::new();
        let t1 = g
            .client_credentials(Region::EuWest1, "client-1", &secret("good"))
            .await
            .unwrap();
        assert_eq!(t1.expires_in, GENESYS_TOKEN_TTL_SECS);
        let o1 = g
            .organization(Region::EuWest1, &t1.access_token)
            .await
            .unwrap();
        let again = g
            .client_credentials(Region::EuWest1, "client-1", &secret("good"))
            .await
            .unwrap();
        assert_eq!(
            g.organization(Region::EuWest1, &again.access_token)
                .await
                .unwrap(),
            o1
        );
        let t2 = g
            .client_credentials(Region::EuWest1, "client-2", &secret("good"))
            .await
            .unwrap();
        assert_ne!(
            g.organization(Region::EuWest1, &t2.access_token)
                .await
                .unwrap(),
            o1
        );
        assert!(uuid::Uuid::parse_str(&o1.id).is_ok());
        assert!(matches!(
            g.organization(Region::EuWest1, &secret("forged")).await,
            Err(GenesysError::InvalidClient(_))
        ));
    }

    #[tokio::test]
    async fn whatsapp_checks_token_then_number() {
        let w = SimWhatsApp::new();
        assert_eq!(
            w.phone_number("1234567890", &secret("invalid-token")).await,
            Err(WhatsAppError::InvalidToken(META_INVALID_TOKEN.into()))
        );
        assert_eq!(
            w.phone_number("", &secret("EAAG")).await,
            Err(WhatsAppError::NotFound)
        );
        assert_eq!(
            w.phone_number("abc", &secret("EAAG")).await,
            Err(WhatsAppError::NotFound)
        );
        let info = w.phone_number("1098765432", &secret("EAAG")).await.unwrap();
        assert_eq!(info.id, "1098765432");
        assert_eq!(info.display_phone_number, "+1 555-5432");
        assert_eq!(info.quality_rating.as_deref(), Some("GREEN"));
        assert!(info.verified_name.is_some());
    }
}
