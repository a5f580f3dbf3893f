//! `/api/v1/audit`: the tenant's audit trail, for its admins. `GET /api/v1/audit` pages it
//! newest first (`limit`, `cursor`, `action`); `GET /api/v1/audit/verify` checks its HMAC
//! chain and reports the first break.

use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::Authenticated;
use crate::state::AppState;
use actix_web::{HttpResponse, get, web};
use portal_domain::audit::{
    AuditAction, AuditActor, AuditEntry, AuditError, AuditOutcome, AuditQuery, ChainBreak,
    Verification,
};
use portal_domain::ports::stores::AuditCursor;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};
use utoipa::{IntoParams, ToSchema};

/// Query of `GET /api/v1/audit`, read as text so each bad field is reported by name.
#[derive(Debug, Deserialize)]
pub(crate) struct AuditListQuery {
    /// Entries per page.
    pub limit: Option<String>,
    /// The previous page's `nextCursor`.
    pub cursor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
}

impl IntoParams for AuditListQuery {
    fn into_params(parameter_in: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let param = |name: &str, description: String, schema: Object| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(parameter_in().unwrap_or(ParameterIn::Query))
                .description(Some(description))
                .required(Required::False)
                .schema(Some(schema))
                .build()
        };
        let actions: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        vec![
            param(
                "limit",
                format!(
                    "Entries per page, 1-{} (default {}).",
                    AuditQuery::MAX_LIMIT,
                    AuditQuery::DEFAULT_LIMIT
                ),
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                    .minimum(Some(1))
                    .maximum(Some(AuditQuery::MAX_LIMIT as f64))
                    .build(),
            ),
            param(
                "cursor",
                "The previous page's `nextCursor`.".into(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(CURSOR_PATTERN))
                    .build(),
            ),
            param(
                "action",
                "Only entries of this action.".into(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(actions))
                    .build(),
            ),
        ]
    }
}

/// What a cursor looks like (a stream position).
const CURSOR_PATTERN: &str = "^[0-9]{1,20}-[0-9]{1,20}$";

fn is_cursor(s: &str) -> bool {
    s.split_once('-').is_some_and(|(a, b)| {
        [a, b]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 20 && p.bytes().all(|c| c.is_ascii_digit()))
    })
}

impl AuditListQuery {
    /// The query, or every bad field.
    pub(crate) fn try_into_domain(&self) -> Result<AuditQuery, ApiError> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(FieldProblem {
                field: field.to_owned(),
                message,
            });
        };
        let limit = match self.limit.as_deref() {
            None => AuditQuery::DEFAULT_LIMIT,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if (1..=AuditQuery::MAX_LIMIT).contains(&n) => n,
                _ => {
                    problem(
                        "limit",
                        format!("limit must be between 1 and {}", AuditQuery::MAX_LIMIT),
                    );
                    AuditQuery::DEFAULT_LIMIT
                }
            },
        };
        let before = match self.cursor.as_deref() {
            None => None,
            Some(c) if is_cursor(c) => Some(AuditCursor(c.to_owned())),
            Some(_) => {
                problem(
                    "cursor",
                    "cursor must be a nextCursor of this endpoint".into(),
                );
                None
            }
        };
        let action = match self.action.as_deref() {
            None => None,
            Some(a) => {
                let parsed = AuditAction::parse(a);
                if parsed.is_none() {
                    problem(
                        "action",
                        "action must be one of the documented actions".into(),
                    );
                }
                parsed
            }
        };
        if problems.is_empty() {
            Ok(AuditQuery {
                limit,
                before,
                action,
            })
        } else {
            Err(ApiError::validation_list(problems))
        }
    }
}

/// Who did it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActorView {
    /// The user.
    pub user_id: String,
    /// Their e-mail.
    #[schema(format = Email)]
    pub email: String,
    /// `admin`, `agent` or `viewer`.
    pub role: String,
}

impl From<AuditActor> for ActorView {
    fn from(a: AuditActor) -> Self {
        Self {
            user_id: a.user_id.to_string(),
            email: a.email.to_string(),
            role: a.role.as_str().to_owned(),
        }
    }
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditEntryView {
    /// The entry's ID.
    #[schema(format = Uuid)]
    pub id: String,
    /// When it happened.
    #[schema(format = DateTime)]
    pub time: String,
    /// What happened (`auth.sign_in`, `auth.session_ended`, `onboarding.genesys_credentials`,
    /// ...).
    pub action: String,
    /// `success`, `failure` or `refused`.
    pub outcome: String,
    /// Who did it; null for a refused sign-in.
    pub actor: Option<ActorView>,
    /// The tenant.
    #[schema(format = Uuid)]
    pub tenant_id: Option<String>,
    /// What it was done to: `session:<handle>`, `user:<id>`, `tenant:<id>`,
    /// `conversation:<id>`.
    pub target: Option<String>,
    /// The client's IP.
    pub client_ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The request's ID (`X-Request-ID`).
    pub correlation_id: Option<String>,
    /// Names and outcomes (`reason`, `fieldsChanged`, check results, IDs); never a value of
    /// a secret, a token or message text.
    // A map (not `serde_json::Map`), so that the schema allows any further properties.
    pub details: std::collections::BTreeMap<String, serde_json::Value>,
}

fn wire<T: Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id.to_string(),
            time: e.time.format(&Rfc3339).unwrap_or_default(),
            action: e.action.as_str().to_owned(),
            outcome: wire::<AuditOutcome>(e.outcome),
            actor: e.actor.map(ActorView::from),
            tenant_id: e.tenant_id.map(|t| t.to_string()),
            target: e.target,
            client_ip: e.client_ip,
            user_agent: e.user_agent,
            correlation_id: e.correlation_id,
            details: e.details.into_iter().collect(),
        }
    }
}

/// `GET /api/v1/audit`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditPageResponse {
    /// Newest first.
    pub entries: Vec<AuditEntryView>,
    /// Pass as `cursor` for the next (older) page; null at the end of the trail.
    #[schema(pattern = "^[0-9]{1,20}-[0-9]{1,20}$")]
    pub next_cursor: Option<String>,
}

/// The first entry that breaks the chain.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BreakView {
    /// Its position (as `cursor` values are).
    pub cursor: String,
    /// Its ID, when its content still reads as an entry.
    #[schema(format = Uuid)]
    pub entry_id: Option<String>,
    /// `altered` (its content no longer matches its HMAC) or `previous_entry_missing` (an
    /// entry before it was removed or reordered).
    pub reason: String,
}

impl From<ChainBreak> for BreakView {
    fn from(b: ChainBreak) -> Self {
        Self {
            cursor: b.cursor.0,
            entry_id: b.entry_id.map(|id| id.to_string()),
            reason: b.reason.as_str().to_owned(),
        }
    }
}

/// `GET /api/v1/audit/verify`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerifyResponse {
    /// No entry breaks the chain.
    pub valid: bool,
    /// Entries checked (the whole trail kept).
    #[schema(minimum = 0)]
    pub checked: u64,
    /// Entries that break the chain.
    #[schema(minimum = 0)]
    pub broken: u64,
    /// The first of them; null when the chain holds.
    pub first_break: Option<BreakView>,
}

impl From<Verification> for VerifyResponse {
    fn from(v: Verification) -> Self {
        Self {
            valid: v.is_valid(),
            checked: v.checked,
            broken: v.broken,
            first_break: v.first_break.map(BreakView::from),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Forbidden(denied) => ApiError::forbidden(denied),
            AuditError::Store(s) => ApiError::unavailable(s),
        }
    }
}

/// The tenant's audit trail, newest first (admins).
#[utoipa::path(
    tag = "audit",
    params(AuditListQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "A page of the trail", body = AuditPageResponse),
        (status = 400, description = "VALIDATION_FAILED: bad `limit`, `cursor` or `action`", body = ErrorBody),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: not an admin, or onboarding unfinished", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 503, description = "Audit store unavailable", body = ErrorBody),
    )
)]
#[get("/api/v1/audit")]
pub(crate) async fn list_audit_entries(
    auth: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<AuditListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.try_into_domain()?;
    let page = state.auditor().page(&auth.current, query).await?;
    Ok(HttpResponse::Ok().json(AuditPageResponse {
        entries: page.entries.into_iter().map(AuditEntryView::from).collect(),
        next_cursor: page.next.map(|c| c.0),
    }))
}

/// Checks the tenant's trail: each entry's HMAC-SHA256 over its content and the previous
/// entry's HMAC (admins).
#[utoipa::path(
    tag = "audit",
    security(("session" = [])),
    responses(
        (status = 200, description = "The check's result (a broken chain is `valid: false`, not an error)", body = VerifyResponse),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: not an admin, or onboarding unfinished", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 503, description = "Audit store unavailable", body = ErrorBody),
    )
)]
#[get("/api/v1/audit/verify")]
pub(crate) async fn verify_audit_chain(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let verification = state.auditor().verify(&auth.current).await?;
    Ok(HttpResponse::Ok().json(VerifyResponse::from(verification)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn q(limit: Option<&str>, cursor: Option<&str>, action: Option<&str>) -> AuditListQuery {
        AuditListQuery {
            limit: limit.map(str::to_owned),
            cursor: cursor.map(str::to_owned),
            action: action.map(str::to_owned),
        }
    }

    #[test]
    fn every_bad_parameter_is_reported() {
        let ok = q(Some("10"), Some("1700000000000-0"), Some("auth.sign_in"))
            .try_into_domain()
            .unwrap();
        assert_eq!(ok.limit, 10);
        assert_eq!(ok.action, Some(AuditAction::SignIn));
        assert_eq!(
            q(None, None, None).try_into_domain().unwrap().limit,
            AuditQuery::DEFAULT_LIMIT
        );
        let e = q(Some("0"), Some("+"), Some("auth.nothing"))
            .try_into_domain()
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationFailed);
        for bad in ["101", "x", "-1"] {
            assert!(q(Some(bad), None, None).try_into_domain().is_err(), "{bad}");
        }
        for bad in ["1-", "-", "(1-0", "1-0-0"] {
            assert!(q(None, Some(bad), None).try_into_domain().is_err(), "{bad}");
        }
    }
}
