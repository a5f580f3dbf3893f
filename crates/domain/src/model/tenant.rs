//! Tenants, Genesys regions and the configuration persisted at the end of onboarding.

use super::{Email, TenantId, UserId};
use crate::secret::SecretString;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;

/// A Genesys Cloud region (spec §6.2 list) and the real domain it maps to (decisions §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Region {
    /// `us-east-1` → mypurecloud.com
    UsEast1,
    /// `us-east-2` → use2.us-gov-pure.cloud
    UsEast2,
    /// `us-west-2` → usw2.pure.cloud
    UsWest2,
    /// `eu-west-1` → mypurecloud.ie
    EuWest1,
    /// `eu-central-1` → mypurecloud.de
    EuCentral1,
    /// `ap-southeast-2` → mypurecloud.com.au
    ApSoutheast2,
    /// `ap-northeast-1` → mypurecloud.jp
    ApNortheast1,
}

impl Region {
    /// Every supported region.
    pub const ALL: [Region; 7] = [
        Region::UsEast1,
        Region::UsEast2,
        Region::UsWest2,
        Region::EuWest1,
        Region::EuCentral1,
        Region::ApSoutheast2,
        Region::ApNortheast1,
    ];

    /// The region's name as the spec writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Region::UsEast1 => "us-east-1",
            Region::UsEast2 => "us-east-2",
            Region::UsWest2 => "us-west-2",
            Region::EuWest1 => "eu-west-1",
            Region::EuCentral1 => "eu-central-1",
            Region::ApSoutheast2 => "ap-southeast-2",
            Region::ApNortheast1 => "ap-northeast-1",
        }
    }

    /// The Genesys Cloud domain of the region.
    pub(crate) fn domain(self) -> &'static str {
        match self {
            Region::UsEast1 => "mypurecloud.com",
            Region::UsEast2 => "use2.us-gov-pure.cloud",
            Region::UsWest2 => "usw2.pure.cloud",
            Region::EuWest1 => "mypurecloud.ie",
            Region::EuCentral1 => "mypurecloud.de",
            Region::ApSoutheast2 => "mypurecloud.com.au",
            Region::ApNortheast1 => "mypurecloud.jp",
        }
    }

    /// `https://login.{domain}`.
    pub fn login_base_url(self) -> String {
        format!("https://login.{}", self.domain())
    }

    /// `https://api.{domain}`.
    pub fn api_base_url(self) -> String {
        format!("https://api.{}", self.domain())
    }

    /// The list of names, for error messages.
    pub fn names() -> String {
        Region::ALL.map(Region::as_str).join(", ")
    }
}

impl FromStr for Region {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Region::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("Region must be one of: {}", Region::names()))
    }
}

impl TryFrom<String> for Region {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Region> for String {
    fn from(r: Region) -> String {
        r.as_str().to_owned()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant's lifecycle status at the Tenant Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Created by onboarding step 1, not yet complete.
    Onboarding,
    /// Onboarded: the integration is live.
    Active,
    /// Switched off by an operator.
    Suspended,
}

/// A tenant as the Tenant Service returns it (secrets are never returned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// Tenant ID.
    pub id: TenantId,
    /// Company name.
    pub company_name: String,
    /// Genesys region.
    pub region: Region,
    /// Contact e-mail, when the service returns it.
    #[serde(default)]
    pub contact_email: Option<Email>,
    /// Lifecycle status.
    pub status: TenantStatus,
}

/// What onboarding step 1 sends to create a tenant (spec §3.1.2 `createTenant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    /// Company name, 2-100 characters.
    pub company_name: String,
    /// Genesys region.
    pub region: Region,
    /// Contact e-mail.
    pub contact_email: Email,
    /// The user who started onboarding; the Tenant Service links them to the tenant.
    pub created_by: UserId,
}

/// Genesys credentials to persist (the Tenant Service re-encrypts the secret at rest).
#[derive(Debug)]
pub struct GenesysConfig {
    /// OAuth client ID.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: SecretString,
    /// Region of the Genesys organisation.
    pub region: Region,
}

/// WhatsApp credentials to persist.
#[derive(Debug)]
pub struct WhatsAppConfig {
    /// Meta phone number ID.
    pub phone_number_id: String,
    /// Meta system-user token.
    pub system_user_token: SecretString,
    /// The display phone number Meta reported.
    pub phone_number: Option<String>,
}

/// Webhook endpoints and their shared secrets, generated once at completion.
#[derive(Debug)]
pub struct WebhookConfig {
    /// `{BASE_URL}/webhooks/genesys/{tenantId}`.
    pub genesys_url: String,
    /// `{BASE_URL}/webhooks/meta/{tenantId}`.
    pub meta_url: String,
    /// 256-bit secret, hex, used to verify webhook signatures.
    pub secret: SecretString,
    /// Meta's verify token.
    pub verify_token: SecretString,
}

/// A partial update of a tenant (spec §3.1.2 `updateTenant`). `None` fields are left alone.
#[derive(Debug, Default)]
pub struct TenantUpdate {
    /// New company name.
    pub company_name: Option<String>,
    /// New region.
    pub region: Option<Region>,
    /// New contact e-mail.
    pub contact_email: Option<Email>,
    /// Genesys credentials.
    pub genesys_config: Option<GenesysConfig>,
    /// WhatsApp credentials.
    pub whatsapp_config: Option<WhatsAppConfig>,
    /// Webhook configuration.
    pub webhooks: Option<WebhookConfig>,
    /// New status.
    pub status: Option<TenantStatus>,
    /// Who completed onboarding.
    pub onboarded_by: Option<UserId>,
    /// When onboarding completed.
    pub onboarded_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_real_domains() {
        assert_eq!(
            Region::UsEast1.login_base_url(),
            "https://login.mypurecloud.com"
        );
        assert_eq!(
            Region::UsWest2.api_base_url(),
            "https://api.usw2.pure.cloud"
        );
        assert_eq!(Region::EuWest1.domain(), "mypurecloud.ie");
        assert_eq!(Region::EuCentral1.domain(), "mypurecloud.de");
        assert_eq!(Region::ApSoutheast2.domain(), "mypurecloud.com.au");
        assert_eq!(Region::ApNortheast1.domain(), "mypurecloud.jp");
        assert_eq!(Region::UsEast2.domain(), "use2.us-gov-pure.cloud");
    }

    #[test]
    fn unknown_region_is_refused_with_the_list() {
        let err = "mars-1".parse::<Region>().unwrap_err();
        assert!(err.contains("us-east-1") && err.contains("ap-northeast-1"));
        for r in Region::ALL {
            assert_eq!(r.as_str().parse::<Region>().unwrap(), r);
        }
    }
}
