//! `/api/v1/onboarding/*`: the five-step wizard (spec §6, decisions §5).
//!
//! Each handler converts its request DTO into domain inputs ([`request`]: every problem at
//! once, as `VALIDATION_FAILED` with per-field `details.fields`; the rules are the domain's
//! newtypes), calls one method of the domain's [`Onboarding`] use case, and answers with the
//! response DTO built from what it returns ([`response`]). The domain owns everything else:
//! step order, tenant isolation, the failed-attempt limit, secrets.
//!
//! Secrets arrive as `SecretString`s: never logged, never in a `Debug`, never echoed (a
//! refused secret is reported by field name only).

use crate::body::IntoDto;
use crate::error::{ApiError, ErrorBody, ErrorCode, ErrorDetails, FieldProblem};
use crate::extract::Authenticated;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use portal_domain::model::TenantId;
use portal_domain::onboarding::{FieldError, OnboardingError};

pub(crate) mod request;
pub(crate) mod response;

use request::{CompleteRequest, Step1Request, Step2Request, Step3Request, ValidateQuery};
use response::{
    CompletionResponse, StatusResponse, Step1Response, StepResponse, ValidationResponse,
};

/// Inputs or integrations the downstream checks refused, as `VALIDATION_FAILED`.
fn refused(errors: Vec<FieldError>) -> ApiError {
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

impl From<OnboardingError> for ApiError {
    fn from(e: OnboardingError) -> Self {
        match e {
            OnboardingError::Validation { errors } => refused(errors),
            OnboardingError::InvalidStep { current } => ApiError::new(
                ErrorCode::InvalidStep,
                format!("Must complete step {} first", current.saturating_add(1)),
            )
            .with_details(ErrorDetails {
                current_step: Some(current),
                ..ErrorDetails::default()
            }),
            OnboardingError::SessionExpired => {
                ApiError::new(ErrorCode::SessionExpired, "Onboarding session expired")
                    .with_status(StatusCode::BAD_REQUEST)
            }
            OnboardingError::Conflict { current } => ApiError::new(
                ErrorCode::Conflict,
                "The onboarding state was changed by another request; review it and retry",
            )
            .with_details(ErrorDetails {
                current: serde_json::to_value(StatusResponse::from(&*current)).ok(),
                ..ErrorDetails::default()
            }),
            OnboardingError::NotFound => {
                ApiError::new(ErrorCode::NotFound, "No active onboarding session")
            }
            OnboardingError::RateLimited { decision } => ApiError::rate_limited(decision),
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
    security(("session" = [], "csrf" = [])),
    request_body = Step1Request,
    responses(
        (status = 200, description = "The organisation is recorded; the session is bound to the tenant", body = Step1Response),
        (status = 400, description = "VALIDATION_FAILED: every refused field in details.fields", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: only an admin onboards", body = ErrorBody),
        (status = 409, description = "CONFLICT: changed concurrently; details.current", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the Tenant Service or the store is unavailable", body = ErrorBody),
    )
)]
#[post("/api/v1/onboarding/step1")]
pub(crate) async fn step1(
    mut auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let details = auth
        .body
        .take()
        .into_dto::<Step1Request>()?
        .try_into_domain()?;
    let state = state.onboarding().step1(&auth.current, details).await?;
    Ok(HttpResponse::Ok().json(Step1Response::from(&state)))
}

/// Step 2: Genesys client credentials, checked with a client-credentials grant.
#[utoipa::path(
    tag = "onboarding",
    security(("session" = [], "csrf" = [])),
    request_body = Step2Request,
    responses(
        (status = 200, description = "The credentials work and are stored (encrypted)", body = StepResponse),
        (status = 400, description = "VALIDATION_FAILED: bad input or refused credentials (state unchanged); INVALID_STEP: an earlier step is not done; SESSION_EXPIRED: the wizard expired", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: only an admin onboards", body = ErrorBody),
        (status = 409, description = "CONFLICT: changed concurrently; details.current", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED: RATE_LIMIT_ONBOARDING_MAX failed attempts in RATE_LIMIT_ONBOARDING_WINDOW_SECS (this limiter's Retry-After and RateLimit-*)", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: Genesys Cloud or the store is unavailable", body = ErrorBody),
    )
)]
#[post("/api/v1/onboarding/step2")]
pub(crate) async fn step2(
    mut auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (requested, credentials) = auth
        .body
        .take()
        .into_dto::<Step2Request>()?
        .try_into_domain()?;
    let state = state
        .onboarding()
        .step2(&auth.current, requested, credentials)
        .await?;
    Ok(HttpResponse::Ok().json(StepResponse::from(&state)))
}

/// Step 3: the WhatsApp phone number ID and system-user token, checked with Meta.
#[utoipa::path(
    tag = "onboarding",
    security(("session" = [], "csrf" = [])),
    request_body = Step3Request,
    responses(
        (status = 200, description = "The credentials work and are stored (encrypted)", body = StepResponse),
        (status = 400, description = "VALIDATION_FAILED: bad input or refused credentials (state unchanged); INVALID_STEP: an earlier step is not done; SESSION_EXPIRED: the wizard expired", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: only an admin onboards", body = ErrorBody),
        (status = 409, description = "CONFLICT: changed concurrently; details.current", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED: RATE_LIMIT_ONBOARDING_MAX failed attempts in RATE_LIMIT_ONBOARDING_WINDOW_SECS (this limiter's Retry-After and RateLimit-*)", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: Meta or the store is unavailable", body = ErrorBody),
    )
)]
#[post("/api/v1/onboarding/step3")]
pub(crate) async fn step3(
    mut auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (requested, credentials) = auth
        .body
        .take()
        .into_dto::<Step3Request>()?
        .try_into_domain()?;
    let state = state
        .onboarding()
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
        (status = 200, description = "Both integrations checked; a failed check is reported here, not as an error", body = ValidationResponse),
        (status = 400, description = "INVALID_STEP: an earlier step is not done; SESSION_EXPIRED: the wizard expired", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: only an admin onboards", body = ErrorBody),
        (status = 409, description = "CONFLICT: changed concurrently; details.current", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED: RATE_LIMIT_ONBOARDING_MAX failed attempts in RATE_LIMIT_ONBOARDING_WINDOW_SECS (this limiter's Retry-After and RateLimit-*)", body = ErrorBody),
    )
)]
#[get("/api/v1/onboarding/validate")]
pub(crate) async fn validate(
    auth: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<ValidateQuery>,
) -> Result<HttpResponse, ApiError> {
    let requested = query.into_inner().try_into_domain()?;
    let record = state
        .onboarding()
        .validate(&auth.current, requested)
        .await?;
    Ok(HttpResponse::Ok().json(ValidationResponse::from(&record)))
}

/// Step 5: persists the configuration, activates the tenant, returns the webhook setup.
/// A retry after any failure returns the same webhook secret.
#[utoipa::path(
    tag = "onboarding",
    security(("session" = [], "csrf" = [])),
    request_body(content = CompleteRequest, description = "Optional: no body is `{}`"),
    responses(
        (status = 200, description = "The tenant is active; the webhook setup (keep the secret)", body = CompletionResponse),
        (status = 400, description = "VALIDATION_FAILED: an integration check failed; INVALID_STEP: an earlier step is not done; SESSION_EXPIRED: the wizard expired", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: only an admin onboards", body = ErrorBody),
        (status = 409, description = "CONFLICT: changed concurrently; details.current", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED: RATE_LIMIT_ONBOARDING_MAX failed attempts in RATE_LIMIT_ONBOARDING_WINDOW_SECS (this limiter's Retry-After and RateLimit-*)", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the Tenant Service or the store is unavailable; safe to retry", body = ErrorBody),
    )
)]
#[post("/api/v1/onboarding/complete")]
pub(crate) async fn complete(
    mut auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let requested = auth
        .body
        .take()
        .into_optional_dto::<CompleteRequest>()?
        .try_into_domain()?;
    let completion = state
        .onboarding()
        .complete(&auth.current, requested, &state.web().public_url)
        .await?;
    Ok(HttpResponse::Ok().json(CompletionResponse::from(completion)))
}

/// Resumable progress of the session's wizard, without secrets (§6.7).
#[utoipa::path(
    tag = "onboarding",
    security(("session" = [])),
    params(("tenantId" = String, Path, format = Uuid, description = "The session's tenant")),
    responses(
        (status = 200, description = "The wizard's progress, without secrets", body = StatusResponse),
        (status = 403, description = "FORBIDDEN: only an admin onboards", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no active onboarding", body = ErrorBody),
    )
)]
#[get("/api/v1/onboarding/status/{tenantId}")]
pub(crate) async fn status(
    auth: Authenticated,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let requested = path
        .parse::<TenantId>()
        .map_err(|_| ApiError::validation("tenantId", "must be a UUID"))?;
    let state = state.onboarding().status(&auth.current, requested).await?;
    Ok(HttpResponse::Ok().json(StatusResponse::from(&state)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    #[test]
    fn an_expired_wizard_is_a_400_not_a_401() {
        let e = ApiError::from(OnboardingError::SessionExpired);
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(e.code(), ErrorCode::SessionExpired);
    }
}
