//! `/api/v1/onboarding/*`: the five-step wizard (spec §6, decisions §5).
//!
//! Each handler checks the request's shape with garde (every problem at once, as
//! `VALIDATION_FAILED` with per-field `details.fields`), calls one method of the domain's
//! [`Onboarding`] use case, and maps the answer. The domain re-checks the same rules and
//! owns everything else: step order, tenant isolation, the failed-attempt limit, secrets.
//!
//! # Input rules (spec §6.2, §12.3)
//! - `companyName`: 2-100 characters; `region`: one of the spec's seven Genesys regions;
//!   `contactEmail`: an e-mail address.
//! - `tenantId` (body of steps 2, 3 and complete; query of validate): optional, since the
//!   session already names the tenant; when given it must be a UUID and the session's own
//!   tenant (else 403 `TENANT_ISOLATION_VIOLATION`).
//! - `clientId`: 10-100 visible ASCII characters; `clientSecret`: 10-200 visible ASCII
//!   characters (both go into an HTTP Basic header).
//! - `phoneNumberId`: 1-64 ASCII digits (Meta's phone number IDs are numeric, and the value
//!   goes into a URL path, so nothing else is accepted); `systemUserToken`: 10-1024 visible
//!   ASCII characters (it goes into an `Authorization` header).
//!
//! Secrets arrive as [`SecretString`]s: never logged, never in a `Debug`, never echoed (a
//! refused secret is reported by field name only).

use crate::error::{ApiError, ErrorBody, ErrorCode, FieldProblem};
use crate::extract::Authenticated;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use garde::Validate;
use portal_domain::model::{Region, TenantId};
use portal_domain::onboarding::{
    FieldError, GenesysCredentials, Onboarding, OnboardingError, OrganizationDetails,
    WhatsAppCredentials,
};
use portal_domain::secret::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;
use url::Url;
use utoipa::{IntoParams, ToSchema};

pub mod response;

use response::{
    CompletionResponse, StatusResponse, Step1Response, StepResponse, ValidationResponse,
};

/// The wizard as wired into [`AppState`].
#[derive(Clone)]
pub struct OnboardingWiring {
    /// The use case.
    pub usecase: Arc<Onboarding>,
    /// `BASE_URL`: the webhook URLs handed out at completion start with it.
    pub base_url: Url,
}

impl std::fmt::Debug for OnboardingWiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnboardingWiring")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The onboarding wizard, or 503 when this deployment did not wire it.
    fn onboarding_wiring(&self) -> Result<&OnboardingWiring, ApiError> {
        self.0
            .onboarding
            .as_ref()
            .ok_or_else(|| ApiError::unavailable("the onboarding use case is not wired"))
    }
}

// ---- request bodies ---------------------------------------------------------------------

/// Body of `POST /api/v1/onboarding/step1` (§6.2).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Step1Request {
    /// 2-100 characters.
    #[garde(custom(present), length(chars, min = 2, max = 100))]
    #[schema(min_length = 2, max_length = 100, example = "NewCo Ltd")]
    pub company_name: Option<String>,
    /// One of `us-east-1`, `us-east-2`, `us-west-2`, `eu-west-1`, `eu-central-1`,
    /// `ap-southeast-2`, `ap-northeast-1`.
    #[garde(custom(present), custom(region_rule))]
    #[schema(example = "us-east-1")]
    pub region: Option<String>,
    /// Contact e-mail.
    #[garde(custom(present), email)]
    #[schema(format = Email, example = "new@newco.example")]
    pub contact_email: Option<String>,
}

/// Body of `POST /api/v1/onboarding/step2` (§6.3).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Step2Request {
    /// The wizard's tenant (optional: the session's); must be the session's.
    #[garde(custom(uuid_rule))]
    #[schema(format = Uuid)]
    pub tenant_id: Option<String>,
    /// Genesys OAuth client ID: 10-100 visible characters.
    #[garde(
        custom(present),
        length(chars, min = 10, max = 100),
        custom(visible_rule)
    )]
    #[schema(min_length = 10, max_length = 100)]
    pub client_id: Option<String>,
    /// Genesys OAuth client secret: 10-200 visible characters. Never echoed.
    #[garde(custom(present), custom(secret_rule(10, 200)))]
    #[schema(value_type = String, format = Password, min_length = 10, max_length = 200)]
    pub client_secret: Option<SecretString>,
    /// The Genesys region of the org.
    #[garde(custom(present), custom(region_rule))]
    #[schema(example = "us-east-1")]
    pub region: Option<String>,
}

/// Body of `POST /api/v1/onboarding/step3` (§6.4).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Step3Request {
    /// The wizard's tenant (optional: the session's); must be the session's.
    #[garde(custom(uuid_rule))]
    #[schema(format = Uuid)]
    pub tenant_id: Option<String>,
    /// Meta phone number ID: 1-64 digits.
    #[garde(custom(present), length(min = 1, max = 64), custom(digits_rule))]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[0-9]+$",
        example = "1234567890"
    )]
    pub phone_number_id: Option<String>,
    /// Meta system-user token: 10-1024 visible characters. Never echoed.
    #[garde(custom(present), custom(secret_rule(10, 1024)))]
    #[schema(value_type = String, format = Password, min_length = 10, max_length = 1024)]
    pub system_user_token: Option<SecretString>,
}

/// Body of `POST /api/v1/onboarding/complete` (§6.6); may be empty (`{}`).
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompleteRequest {
    /// The wizard's tenant (optional: the session's); must be the session's.
    #[garde(custom(uuid_rule))]
    #[schema(format = Uuid)]
    pub tenant_id: Option<String>,
}

/// Query of `GET /api/v1/onboarding/validate` (§6.5).
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ValidateQuery {
    /// The wizard's tenant (optional: the session's); must be the session's.
    #[serde(rename = "tenantId")]
    #[param(rename = "tenantId", format = Uuid)]
    #[garde(custom(uuid_rule))]
    pub tenant_id: Option<String>,
}

/// A required field (an `Option` so that a missing one is reported by name, not as a
/// deserialisation error).
fn present<T>(value: &Option<T>, _: &()) -> garde::Result {
    match value {
        Some(_) => Ok(()),
        None => Err(garde::Error::new("is required")),
    }
}

fn region_rule(value: &Option<String>, _: &()) -> garde::Result {
    match value {
        Some(v) if v.parse::<Region>().is_err() => Err(garde::Error::new(format!(
            "Region must be one of: {}",
            Region::names()
        ))),
        _ => Ok(()),
    }
}

fn uuid_rule(value: &Option<String>, _: &()) -> garde::Result {
    match value {
        Some(v) if v.parse::<TenantId>().is_err() => Err(garde::Error::new("must be a UUID")),
        _ => Ok(()),
    }
}

fn visible_rule(value: &Option<String>, _: &()) -> garde::Result {
    match value {
        Some(v) if !v.bytes().all(|b| b.is_ascii_graphic()) => Err(garde::Error::new(
            "must contain only visible ASCII characters",
        )),
        _ => Ok(()),
    }
}

fn digits_rule(value: &Option<String>, _: &()) -> garde::Result {
    match value {
        Some(v) if !v.bytes().all(|b| b.is_ascii_digit()) => {
            Err(garde::Error::new("must contain only digits"))
        }
        _ => Ok(()),
    }
}

/// Length in characters and visible ASCII, for a secret. The message never quotes the value.
fn secret_rule(min: usize, max: usize) -> impl FnOnce(&Option<SecretString>, &()) -> garde::Result {
    move |value, _| {
        let Some(v) = value else { return Ok(()) };
        let v = v.expose_secret();
        let len = v.chars().count();
        if !(min..=max).contains(&len) {
            return Err(garde::Error::new(format!(
                "length must be between {min} and {max} characters"
            )));
        }
        if !v.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(garde::Error::new(
                "must contain only visible ASCII characters",
            ));
        }
        Ok(())
    }
}

/// garde reports Rust field names (its `rename` is not applied in 0.23); the API speaks
/// the JSON names: `client_secret` → `clientSecret`.
fn camel_case(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut upper = false;
    for c in path.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// Runs garde; every problem becomes one `details.fields` entry.
fn check<T: Validate<Context = ()>>(input: &T) -> Result<(), ApiError> {
    input.validate().map_err(|report| {
        ApiError::validation_list(
            report
                .iter()
                .map(|(path, error)| FieldProblem {
                    field: camel_case(&path.to_string()),
                    message: error.message().to_owned(),
                })
                .collect(),
        )
    })
}

fn field_problems(errors: Vec<FieldError>) -> ApiError {
    ApiError::validation_list(
        errors
            .into_iter()
            .map(|e| FieldProblem {
                field: e.field.to_owned(),
                message: e.message,
            })
            .collect(),
    )
}

/// A tenant ID that garde already checked (a malformed one cannot get here).
fn tenant(raw: Option<&str>) -> Result<Option<TenantId>, ApiError> {
    raw.map(|t| {
        t.parse::<TenantId>()
            .map_err(|_| ApiError::validation("tenantId", "must be a UUID"))
    })
    .transpose()
}

/// A required field that garde already checked.
fn required<T>(value: Option<T>, field: &'static str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::validation(field, "required"))
}

impl From<OnboardingError> for ApiError {
    fn from(e: OnboardingError) -> Self {
        match e {
            OnboardingError::Validation { errors } => field_problems(errors),
            OnboardingError::InvalidStep { current } => ApiError::new(
                ErrorCode::InvalidStep,
                format!("Must complete step {} first", current.saturating_add(1)),
            )
            .with_details(serde_json::json!({ "currentStep": current })),
            OnboardingError::SessionExpired => {
                ApiError::new(ErrorCode::SessionExpired, "Onboarding session expired")
                    .with_status(StatusCode::BAD_REQUEST)
            }
            OnboardingError::Conflict { current } => ApiError::new(
                ErrorCode::Conflict,
                "The onboarding state was changed by another request; review it and retry",
            )
            .with_details(serde_json::json!({ "current": StatusResponse::from(&*current) })),
            OnboardingError::NotFound => {
                ApiError::new(ErrorCode::NotFound, "No active onboarding session")
            }
            OnboardingError::RateLimited { retry_after } => ApiError::rate_limited(retry_after),
            OnboardingError::TenantIsolation => ApiError::tenant_isolation(),
            OnboardingError::SignedOut => ApiError::session_expired(),
            OnboardingError::Forbidden(denied) => ApiError::forbidden(denied),
            e @ OnboardingError::Unavailable { .. } => ApiError::unavailable(e),
            OnboardingError::Store(s) => ApiError::unavailable(s),
        }
    }
}

// ---- handlers ---------------------------------------------------------------------------

/// Step 1: the organisation; creates (or updates) the tenant and binds the session to it.
#[utoipa::path(
    tag = "onboarding",
    security(("session" = []), ("csrf" = [])),
    request_body = Step1Request,
    responses(
        (status = 200, body = Step1Response),
        (status = 400, description = "VALIDATION_FAILED (details.fields)", body = ErrorBody),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "CSRF_FAILED, or FORBIDDEN (agent, viewer)", body = ErrorBody),
        (status = 409, description = "CONFLICT: changed concurrently; details.current", body = ErrorBody),
        (status = 503, description = "Tenant Service or store unavailable", body = ErrorBody),
    )
)]
#[post("/api/v1/onboarding/step1")]
pub async fn step1(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: web::Json<Step1Request>,
) -> Result<HttpResponse, ApiError> {
    let wizard = state.onboarding_wiring()?;
    check(&*body)?;
    let body = body.into_inner();
    let details = OrganizationDetails::new(
        &required(body.company_name, "companyName")?,
        &required(body.region, "region")?,
        &required(body.contact_email, "contactEmail")?,
    )
    .map_err(field_problems)?;
    let state = wizard.usecase.step1(&auth.current, details).await?;
    Ok(HttpResponse::Ok().json(Step1Response::from(&state)))
}

/// Step 2: Genesys client credentials, checked with a client-credentials grant.
#[utoipa::path(
    tag = "onboarding",
    security(("session" = []), ("csrf" = [])),
    request_body = Step2Request,
    responses(
        (status = 200, body = StepResponse),
        (status = 400, description = "VALIDATION_FAILED (bad input or refused credentials; state unchanged), INVALID_STEP, SESSION_EXPIRED (wizard expired)", body = ErrorBody),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "CSRF_FAILED, FORBIDDEN, TENANT_ISOLATION_VIOLATION", body = ErrorBody),
        (status = 409, description = "CONFLICT: changed concurrently; details.current", body = ErrorBody),
        (status = 429, description = "5 failed attempts in 15 minutes; Retry-After", body = ErrorBody),
        (status = 503, description = "Genesys Cloud or store unavailable", body = ErrorBody),
    )
)]
#[post("/api/v1/onboarding/step2")]
pub async fn step2(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: web::Json<Step2Request>,
) -> Result<HttpResponse, ApiError> {
    let wizard = state.onboarding_wiring()?;
    check(&*body)?;
    let body = body.into_inner();
    let requested = tenant(body.tenant_id.as_deref())?;
    let credentials = GenesysCredentials::new(
        &required(body.client_id, "clientId")?,
        required(body.client_secret, "clientSecret")?,
        &required(body.region, "region")?,
    )
    .map_err(field_problems)?;
    let state = wizard
        .usecase
        .step2(&auth.current, requested, credentials)
        .await?;
    Ok(HttpResponse::Ok().json(StepResponse::from(&state)))
}

/// Step 3: the WhatsApp phone number ID and system-user token, checked with Meta.
#[utoipa::path(
    tag = "onboarding",
    security(("session" = []), ("csrf" = [])),
    request_body = Step3Request,
    responses(
        (status = 200, body = StepResponse),
        (status = 400, description = "VALIDATION_FAILED (bad input or refused credentials; state unchanged), INVALID_STEP, SESSION_EXPIRED (wizard expired)", body = ErrorBody),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "CSRF_FAILED, FORBIDDEN, TENANT_ISOLATION_VIOLATION", body = ErrorBody),
        (status = 409, description = "CONFLICT: changed concurrently; details.current", body = ErrorBody),
        (status = 429, description = "5 failed attempts in 15 minutes; Retry-After", body = ErrorBody),
        (status = 503, description = "Meta or store unavailable", body = ErrorBody),
    )
)]
#[post("/api/v1/onboarding/step3")]
pub async fn step3(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: web::Json<Step3Request>,
) -> Result<HttpResponse, ApiError> {
    let wizard = state.onboarding_wiring()?;
    check(&*body)?;
    let body = body.into_inner();
    let requested = tenant(body.tenant_id.as_deref())?;
    let credentials = WhatsAppCredentials::new(
        &required(body.phone_number_id, "phoneNumberId")?,
        required(body.system_user_token, "systemUserToken")?,
    )
    .map_err(field_problems)?;
    let state = wizard
        .usecase
        .step3(&auth.current, requested, credentials)
        .await?;
    Ok(HttpResponse::Ok().json(StepResponse::from(&state)))
}

/// Step 4: tests both integrations in parallel with the stored credentials and records the
/// result; a failed check is part of the 200 answer.
#[utoipa::path(
    tag = "onboarding",
    security(("session" = [])),
    params(ValidateQuery),
    responses(
        (status = 200, body = ValidationResponse),
        (status = 400, description = "VALIDATION_FAILED (bad tenantId), INVALID_STEP, SESSION_EXPIRED (wizard expired)", body = ErrorBody),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN, TENANT_ISOLATION_VIOLATION", body = ErrorBody),
        (status = 409, description = "CONFLICT: changed concurrently; details.current", body = ErrorBody),
        (status = 429, description = "5 failed attempts in 15 minutes; Retry-After", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
#[get("/api/v1/onboarding/validate")]
pub async fn validate(
    auth: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<ValidateQuery>,
) -> Result<HttpResponse, ApiError> {
    let wizard = state.onboarding_wiring()?;
    check(&*query)?;
    let requested = tenant(query.tenant_id.as_deref())?;
    let record = wizard.usecase.validate(&auth.current, requested).await?;
    Ok(HttpResponse::Ok().json(ValidationResponse::from(&record)))
}

/// Step 5: persists the configuration, activates the tenant, returns the webhook setup.
/// A retry after any failure returns the same webhook secret.
#[utoipa::path(
    tag = "onboarding",
    security(("session" = []), ("csrf" = [])),
    request_body(content = CompleteRequest, description = "Optional; `{}` is enough"),
    responses(
        (status = 200, body = CompletionResponse),
        (status = 400, description = "VALIDATION_FAILED (a failed integration check), INVALID_STEP, SESSION_EXPIRED (wizard expired)", body = ErrorBody),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "CSRF_FAILED, FORBIDDEN, TENANT_ISOLATION_VIOLATION", body = ErrorBody),
        (status = 409, description = "CONFLICT: changed concurrently; details.current", body = ErrorBody),
        (status = 429, description = "5 failed attempts in 15 minutes; Retry-After", body = ErrorBody),
        (status = 503, description = "Tenant Service or store unavailable; safe to retry", body = ErrorBody),
    )
)]
#[post("/api/v1/onboarding/complete")]
pub async fn complete(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: Option<web::Json<CompleteRequest>>,
) -> Result<HttpResponse, ApiError> {
    let wizard = state.onboarding_wiring()?;
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    check(&body)?;
    let requested = tenant(body.tenant_id.as_deref())?;
    let completion = wizard
        .usecase
        .complete(&auth.current, requested, &wizard.base_url)
        .await?;
    Ok(HttpResponse::Ok().json(CompletionResponse::from(completion)))
}

/// Resumable progress of the session's wizard, without secrets (§6.7).
#[utoipa::path(
    tag = "onboarding",
    security(("session" = [])),
    params(("tenantId" = String, Path, format = Uuid, description = "The session's tenant")),
    responses(
        (status = 200, body = StatusResponse),
        (status = 400, description = "VALIDATION_FAILED (not a UUID)", body = ErrorBody),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN, TENANT_ISOLATION_VIOLATION", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no active onboarding", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
#[get("/api/v1/onboarding/status/{tenantId}")]
pub async fn status(
    auth: Authenticated,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let wizard = state.onboarding_wiring()?;
    let requested = path
        .parse::<TenantId>()
        .map_err(|_| ApiError::validation("tenantId", "must be a UUID"))?;
    let state = wizard.usecase.status(&auth.current, requested).await?;
    Ok(HttpResponse::Ok().json(StatusResponse::from(&state)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    fn problems(e: ApiError) -> Vec<String> {
        let res = e.error_response();
        let body = res
            .extensions()
            .get::<crate::error::ErrorPayload>()
            .cloned()
            .unwrap();
        body.0.details.unwrap()["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn step1_reports_every_bad_field_by_its_json_name() {
        let req: Step1Request =
            serde_json::from_str(r#"{"companyName":"A","region":"mars-1","contactEmail":"nope"}"#)
                .unwrap();
        let mut fields = problems(check(&req).unwrap_err());
        fields.sort();
        assert_eq!(fields, ["companyName", "contactEmail", "region"]);
        let missing: Step1Request = serde_json::from_str("{}").unwrap();
        assert_eq!(problems(check(&missing).unwrap_err()).len(), 3);
    }

    #[test]
    fn secrets_are_checked_without_being_quoted() {
        let req: Step2Request = serde_json::from_str(
            r#"{"clientId":"client-0001","clientSecret":"short!","region":"us-east-1"}"#,
        )
        .unwrap();
        let e = check(&req).unwrap_err();
        assert!(!format!("{e:?} {e}").contains("short!"));
        assert_eq!(problems(e), ["clientSecret"]);
        assert!(!format!("{req:?}").contains("short!"));
    }

    #[test]
    fn phone_number_ids_are_digits_only() {
        for (id, ok) in [
            ("1234567890", true),
            ("12ab", false),
            ("", false),
            ("1/2", false),
        ] {
            let req = Step3Request {
                tenant_id: None,
                phone_number_id: Some(id.into()),
                system_user_token: Some(SecretString::from("token-0000000001".to_owned())),
            };
            assert_eq!(check(&req).is_ok(), ok, "{id}");
        }
        let long = "1".repeat(65);
        let req = Step3Request {
            tenant_id: None,
            phone_number_id: Some(long),
            system_user_token: Some(SecretString::from("token-0000000001".to_owned())),
        };
        assert_eq!(problems(check(&req).unwrap_err()), ["phoneNumberId"]);
    }

    #[test]
    fn an_expired_wizard_is_a_400_not_a_401() {
        let e = ApiError::from(OnboardingError::SessionExpired);
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(e.code(), ErrorCode::SessionExpired);
    }
}
