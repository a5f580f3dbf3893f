//! The tenant guard (spec §5.3): a `tenantId` a request names, in its path, its query or its
//! JSON body, must be the session's own tenant. Another tenant is refused with 403
//! `TENANT_ISOLATION_VIOLATION` and a security log line; a value that is not a UUID is a 400
//! `VALIDATION_FAILED` (it names no tenant). A session not yet bound to a tenant (before
//! onboarding step 1) may name none.
//!
//! Applied to every route in one place: [`Authenticated`](crate::extract::Authenticated)
//! checks the path and the query once the session is known, and the body once it has read it;
//! the WebSocket upgrade, which authenticates on its own, calls [`check_path`]. The refusal is
//! decided in [`refuse`] only (the place for an audit record).

use crate::error::ApiError;
use actix_web::HttpRequest;
use portal_domain::audit::{AuditAction, AuditEvent, AuditOutcome};
use portal_domain::auth::CurrentSession;
use portal_domain::model::TenantId;
use serde_json::Value;
use std::fmt;

/// The field, parameter and path segment the guard reads.
pub(crate) const TENANT_ID: &str = "tenantId";

/// Where the request named the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// The route's `{tenantId}` segment.
    Path,
    /// `?tenantId=`.
    Query,
    /// The JSON body's top-level `tenantId`.
    Body,
}

impl Place {
    fn as_str(self) -> &'static str {
        match self {
            Place::Path => "path",
            Place::Query => "query",
            Place::Body => "body",
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The path's `{tenantId}` and every `?tenantId=`.
pub(crate) fn check_request(req: &HttpRequest, current: &CurrentSession) -> Result<(), ApiError> {
    check_path(req, current)?;
    let query = url::form_urlencoded::parse(req.query_string().as_bytes());
    for (name, value) in query {
        if name == TENANT_ID {
            check(req, current, Place::Query, &value)?;
        }
    }
    Ok(())
}

/// The path's `{tenantId}`, if the route has one.
pub(crate) fn check_path(req: &HttpRequest, current: &CurrentSession) -> Result<(), ApiError> {
    match req.match_info().get(TENANT_ID) {
        Some(value) => check(req, current, Place::Path, value),
        None => Ok(()),
    }
}

/// The body's top-level `tenantId` (`null` is no tenant; any other non-string is not a UUID).
pub(crate) fn check_body(
    req: &HttpRequest,
    current: &CurrentSession,
    body: &serde_json::Map<String, Value>,
) -> Result<(), ApiError> {
    match body.get(TENANT_ID) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(value)) => check(req, current, Place::Body, value),
        Some(_) => Err(not_a_uuid()),
    }
}

fn not_a_uuid() -> ApiError {
    ApiError::validation(TENANT_ID, "tenantId must be a UUID")
}

fn check(
    req: &HttpRequest,
    current: &CurrentSession,
    place: Place,
    value: &str,
) -> Result<(), ApiError> {
    let requested: TenantId = value.parse().map_err(|_| not_a_uuid())?;
    if current.session.tenant_id == Some(requested) {
        Ok(())
    } else {
        Err(refuse(req, current, place, requested))
    }
}

/// The one place a request for another tenant is refused: the security log line, the audit
/// record, and the answer.
fn refuse(
    req: &HttpRequest,
    current: &CurrentSession,
    place: Place,
    requested: TenantId,
) -> ApiError {
    tracing::warn!(
        security_event = "tenant_isolation_violation",
        user_id = %current.session.user_id,
        session_tenant = current.session.tenant_id.map(tracing::field::display),
        requested_tenant = %requested,
        place = %place,
        path = req.path(),
        "request for another tenant refused"
    );
    if let Ok(state) = crate::extract::app_state(req) {
        state.auditor().record(
            AuditEvent::by(
                current,
                AuditAction::TenantIsolationRefused,
                AuditOutcome::Refused,
            )
            .target(format!("tenant:{requested}"))
            .reason(place.as_str()),
        );
    }
    ApiError::tenant_isolation()
}
