//! The wizard's request DTOs (spec §6.2-§6.6, §12.3): raw fields in, domain inputs out.
//!
//! Each field is read as an `Option` so that a missing one is reported by its JSON name, and
//! `try_into_domain()` runs the domain's validating constructor of every field, reporting
//! every problem at once as `VALIDATION_FAILED` with per-field `details.fields`. The rules
//! themselves (and the limits the OpenAPI schema shows) belong to the domain's newtypes.
//!
//! `tenantId` (body of steps 2, 3 and complete; query of validate) is optional, since the
//! session already names the tenant; when given it must be a UUID, and the use case refuses
//! one that is not the session's own (403 `TENANT_ISOLATION_VIOLATION`).

use crate::error::ApiError;
use crate::input::{Problems, schema};
use portal_domain::model::{Email, Region, TenantId};
use portal_domain::onboarding::{
    ClientId, ClientSecret, CompanyName, GenesysCredentials, OrganizationDetails, PhoneNumberId,
    SystemUserToken, WhatsAppCredentials,
};
use portal_domain::secret::SecretString;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// Body of `POST /api/v1/onboarding/step1` (§6.2).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Step1Request {
    /// The company's name ([`CompanyName`]).
    #[schema(schema_with = schema::company_name, required = true)]
    pub company_name: Option<String>,
    /// The Genesys region ([`Region`]).
    #[schema(schema_with = schema::region, required = true)]
    pub region: Option<String>,
    /// Contact e-mail ([`Email`]).
    #[schema(schema_with = schema::email, required = true)]
    pub contact_email: Option<String>,
}

impl Step1Request {
    /// The organisation details, or every refused field.
    pub(crate) fn try_into_domain(self) -> Result<OrganizationDetails, ApiError> {
        let mut p = Problems::default();
        let company_name = p.required("companyName", self.company_name, CompanyName::parse);
        let region = p.required("region", self.region, |r| r.parse::<Region>());
        let contact_email = p.required("contactEmail", self.contact_email, |e| {
            Email::parse(e).map_err(|_| "Valid email address required")
        });
        match (company_name, region, contact_email) {
            (Some(company_name), Some(region), Some(contact_email)) => Ok(OrganizationDetails {
                company_name,
                region,
                contact_email,
            }),
            _ => Err(p.into()),
        }
    }
}

/// Body of `POST /api/v1/onboarding/step2` (§6.3).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Step2Request {
    /// The wizard's tenant (optional: the session's); must be the session's.
    #[schema(format = Uuid)]
    pub tenant_id: Option<String>,
    /// Genesys OAuth client ID ([`ClientId`]).
    #[schema(schema_with = schema::client_id, required = true)]
    pub client_id: Option<String>,
    /// Genesys OAuth client secret ([`ClientSecret`]); never echoed.
    #[schema(schema_with = schema::client_secret, required = true)]
    pub client_secret: Option<SecretString>,
    /// The Genesys region of the org ([`Region`]).
    #[schema(schema_with = schema::region, required = true)]
    pub region: Option<String>,
}

impl Step2Request {
    /// The requested tenant and the credentials, or every refused field.
    pub(crate) fn try_into_domain(
        self,
    ) -> Result<(Option<TenantId>, GenesysCredentials), ApiError> {
        let mut p = Problems::default();
        let tenant = tenant(&mut p, self.tenant_id);
        let client_id = p.required("clientId", self.client_id, ClientId::parse);
        let client_secret = p.required("clientSecret", self.client_secret, ClientSecret::parse);
        let region = p.required("region", self.region, |r| r.parse::<Region>());
        match (tenant, client_id, client_secret, region) {
            (Some(tenant), Some(client_id), Some(client_secret), Some(region)) => Ok((
                tenant,
                GenesysCredentials {
                    client_id,
                    client_secret,
                    region,
                },
            )),
            _ => Err(p.into()),
        }
    }
}

/// Body of `POST /api/v1/onboarding/step3` (§6.4).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Step3Request {
    /// The wizard's tenant (optional: the session's); must be the session's.
    #[schema(format = Uuid)]
    pub tenant_id: Option<String>,
    /// Meta phone number ID ([`PhoneNumberId`]).
    #[schema(schema_with = schema::phone_number_id, required = true)]
    pub phone_number_id: Option<String>,
    /// Meta system-user token ([`SystemUserToken`]); never echoed.
    #[schema(schema_with = schema::system_user_token, required = true)]
    pub system_user_token: Option<SecretString>,
}

impl Step3Request {
    /// The requested tenant and the credentials, or every refused field.
    pub(crate) fn try_into_domain(
        self,
    ) -> Result<(Option<TenantId>, WhatsAppCredentials), ApiError> {
        let mut p = Problems::default();
        let tenant = tenant(&mut p, self.tenant_id);
        let phone_number_id =
            p.required("phoneNumberId", self.phone_number_id, PhoneNumberId::parse);
        let system_user_token = p.required(
            "systemUserToken",
            self.system_user_token,
            SystemUserToken::parse,
        );
        match (tenant, phone_number_id, system_user_token) {
            (Some(tenant), Some(phone_number_id), Some(system_user_token)) => Ok((
                tenant,
                WhatsAppCredentials {
                    phone_number_id,
                    system_user_token,
                },
            )),
            _ => Err(p.into()),
        }
    }
}

/// Body of `POST /api/v1/onboarding/complete` (§6.6); may be empty (`{}`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CompleteRequest {
    /// The wizard's tenant (optional: the session's); must be the session's.
    #[schema(format = Uuid)]
    pub tenant_id: Option<String>,
}

impl CompleteRequest {
    /// The requested tenant, if any.
    pub(crate) fn try_into_domain(self) -> Result<Option<TenantId>, ApiError> {
        requested_tenant(self.tenant_id)
    }
}

/// Query of `GET /api/v1/onboarding/validate` (§6.5).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ValidateQuery {
    /// The wizard's tenant (optional: the session's); must be the session's.
    #[serde(rename = "tenantId")]
    #[param(rename = "tenantId", format = Uuid)]
    pub tenant_id: Option<String>,
}

impl ValidateQuery {
    /// The requested tenant, if any.
    pub(crate) fn try_into_domain(self) -> Result<Option<TenantId>, ApiError> {
        requested_tenant(self.tenant_id)
    }
}

/// The optional `tenantId` field: `None` when refused (recorded).
fn tenant(p: &mut Problems, raw: Option<String>) -> Option<Option<TenantId>> {
    p.optional("tenantId", raw, |t| t.parse::<TenantId>())
}

fn requested_tenant(raw: Option<String>) -> Result<Option<TenantId>, ApiError> {
    let mut p = Problems::default();
    tenant(&mut p, raw).ok_or_else(|| p.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    /// The `details.fields[*].field` names of a refusal.
    fn refused<T: std::fmt::Debug>(r: Result<T, ApiError>) -> Vec<String> {
        let res = r.unwrap_err().error_response();
        let body = res
            .extensions()
            .get::<crate::error::ErrorPayload>()
            .cloned()
            .unwrap();
        body.0
            .details
            .unwrap()
            .fields
            .unwrap()
            .into_iter()
            .map(|f| f.field)
            .collect()
    }

    fn step1(json: &str) -> Result<OrganizationDetails, ApiError> {
        serde_json::from_str::<Step1Request>(json)
            .unwrap()
            .try_into_domain()
    }

    fn step2(json: &str) -> Result<(Option<TenantId>, GenesysCredentials), ApiError> {
        serde_json::from_str::<Step2Request>(json)
            .unwrap()
            .try_into_domain()
    }

    fn step3(id: &str) -> Result<(Option<TenantId>, WhatsAppCredentials), ApiError> {
        Step3Request {
            tenant_id: None,
            phone_number_id: Some(id.into()),
            system_user_token: Some(SecretString::from("token-0000000001".to_owned())),
        }
        .try_into_domain()
    }

    #[test]
    fn step1_reports_every_bad_or_missing_field_by_its_json_name() {
        assert_eq!(
            refused(step1(
                r#"{"companyName":"A","region":"mars-1","contactEmail":"nope"}"#
            )),
            ["companyName", "region", "contactEmail"]
        );
        assert_eq!(
            refused(step1("{}")),
            ["companyName", "region", "contactEmail"]
        );
        let ok = step1(r#"{"companyName":" NewCo ","region":"eu-west-1","contactEmail":"a@b.co"}"#)
            .unwrap();
        assert_eq!(ok.company_name.as_str(), "NewCo");
        assert_eq!(ok.region, Region::EuWest1);
    }

    #[test]
    fn every_credential_problem_is_reported_at_once_without_quoting_secrets() {
        let r = step2(
            r#"{"tenantId":"tenant_123","clientId":"short","clientSecret":"short!","region":"moon"}"#,
        );
        let e = r.as_ref().unwrap_err();
        assert!(!format!("{e:?} {e}").contains("short!"));
        assert_eq!(
            refused(r),
            ["tenantId", "clientId", "clientSecret", "region"]
        );
        let req: Step2Request = serde_json::from_str(r#"{"clientSecret":"short!"}"#).unwrap();
        assert!(!format!("{req:?}").contains("short!"));
        let (tenant, c) = step2(
            r#"{"tenantId":"7c0e4b52-1a3f-4d6e-8a90-3c1d5e00ac3e","clientId":"client-0001","clientSecret":"secret-0001","region":"us-east-1"}"#,
        )
        .unwrap();
        assert!(tenant.is_some());
        assert_eq!(c.client_id.as_str(), "client-0001");
    }

    #[test]
    fn phone_number_ids_are_digits_only() {
        for (id, ok) in [
            ("1234567890", true),
            ("12ab", false),
            ("", false),
            ("1/2", false),
        ] {
            assert_eq!(step3(id).is_ok(), ok, "{id}");
        }
        assert_eq!(refused(step3(&"1".repeat(65))), ["phoneNumberId"]);
    }

    #[test]
    fn a_tenant_id_must_be_a_uuid_when_given() {
        assert_eq!(CompleteRequest::default().try_into_domain().unwrap(), None);
        let bad = ValidateQuery {
            tenant_id: Some("x".into()),
        };
        assert_eq!(refused(bad.try_into_domain()), ["tenantId"]);
    }
}
