//! `/api/v1/dashboard/*` (spec §7): period stats (cached, `stale` while the State Manager
//! fails), manual refresh, and date-range figures.
//!
//! Every route needs a session whose tenant has finished onboarding; any role may read. The
//! tenant always comes from the session, never from the request.

use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::Authenticated;
use crate::state::AppState;
use actix_web::{HttpResponse, get, post, web};
use portal_domain::auth::{AccessDenied, Capability};
use portal_domain::dashboard::DashboardError;
use portal_domain::model::{DateRange, DateRangeError, Period, TenantId};
use serde::{Deserialize, Serialize};
use time::Date;
use time::macros::format_description;
use utoipa::{IntoParams, ToSchema};

/// Query of `GET /api/v1/dashboard/stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsQuery {
    /// `today` (default), `week` or `month`.
    pub period: Option<String>,
}

/// Query of `GET /api/v1/dashboard/metrics/range`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RangeQuery {
    /// First day, `YYYY-MM-DD` (UTC).
    #[param(rename = "startDate")]
    pub start_date: Option<String>,
    /// Last day (inclusive), `YYYY-MM-DD` (UTC); not in the future, at most 366 days after
    /// `startDate`.
    #[param(rename = "endDate")]
    pub end_date: Option<String>,
}

/// `POST /api/v1/dashboard/refresh`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RefreshResponse {
    /// Always true.
    pub success: bool,
    /// Confirmation.
    pub message: String,
}

/// The session's tenant if it may view the dashboard (403 `FORBIDDEN` otherwise).
pub(crate) fn tenant_for(
    auth: &Authenticated,
    capability: Capability,
) -> Result<TenantId, ApiError> {
    auth.require(capability)?
        .ok_or_else(|| ApiError::forbidden(AccessDenied::OnboardingIncomplete))
}

impl From<DashboardError> for ApiError {
    fn from(e: DashboardError) -> Self {
        match e {
            DashboardError::Unavailable(f) => ApiError::unavailable(f),
            DashboardError::Store(s) => ApiError::unavailable(s),
            DashboardError::Internal(m) => ApiError::internal(m),
        }
    }
}

/// Parses `period` (absent → `today`).
pub(crate) fn parse_period(raw: Option<&str>) -> Result<Period, ApiError> {
    match raw {
        None => Ok(Period::Today),
        Some(s) => s.parse::<Period>().map_err(|()| {
            let names: Vec<&str> = Period::ALL.iter().map(|p| p.as_str()).collect();
            ApiError::validation(
                "period",
                format!("period must be one of: {}", names.join(", ")),
            )
        }),
    }
}

/// Parses a strict `YYYY-MM-DD` date.
fn parse_date(raw: &str) -> Option<Date> {
    let shape_ok = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    Date::parse(raw, format_description!("[year]-[month]-[day]")).ok()
}

/// Validates `startDate`/`endDate` against `today`, reporting every problem.
pub(crate) fn parse_range(query: &RangeQuery, today: Date) -> Result<DateRange, ApiError> {
    let mut problems = Vec::new();
    let mut date = |field: &str, raw: Option<&str>| match raw {
        None | Some("") => {
            problems.push(FieldProblem {
                field: field.to_owned(),
                message: format!("{field} is required (YYYY-MM-DD)"),
            });
            None
        }
        Some(s) => {
            let d = parse_date(s);
            if d.is_none() {
                problems.push(FieldProblem {
                    field: field.to_owned(),
                    message: "Invalid date format. Use ISO 8601 (YYYY-MM-DD)".to_owned(),
                });
            }
            d
        }
    };
    let start = date("startDate", query.start_date.as_deref());
    let end = date("endDate", query.end_date.as_deref());
    let (Some(start), Some(end)) = (start, end) else {
        return Err(ApiError::validation_list(problems));
    };
    DateRange::new(start, end, today).map_err(|e| {
        let field = match e {
            DateRangeError::Inverted | DateRangeError::TooLong => "startDate",
            DateRangeError::InFuture => "endDate",
        };
        ApiError::validation(field, e.to_string())
    })
}

/// A period's figures (spec §7.2); cached for 10 minutes.
#[utoipa::path(
    tag = "dashboard",
    params(StatsQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "The period's figures (spec §7.2); `\"stale\": true` when the State Manager is failing and these are the last known ones", body = Object),
        (status = 400, description = "Bad `period` (`VALIDATION_FAILED`)", body = ErrorBody),
        (status = 401, description = "No or expired session", body = ErrorBody),
        (status = 403, description = "Onboarding not finished", body = ErrorBody),
        (status = 503, description = "State Manager failing and nothing cached", body = ErrorBody),
    )
)]
#[get("/api/v1/dashboard/stats")]
pub(crate) async fn stats(
    auth: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant_for(&auth, Capability::ViewDashboard)?;
    let period = parse_period(query.period.as_deref())?;
    let view = state.dashboard().stats(tenant, period).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Clears the tenant's cached figures and conversation pages (spec §7.3).
#[utoipa::path(
    tag = "dashboard",
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Caches cleared", body = RefreshResponse),
        (status = 401, description = "No or expired session", body = ErrorBody),
        (status = 403, description = "CSRF check failed, or onboarding not finished", body = ErrorBody),
        (status = 503, description = "Cache store unavailable", body = ErrorBody),
    )
)]
#[post("/api/v1/dashboard/refresh")]
pub(crate) async fn refresh(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant_for(&auth, Capability::ViewDashboard)?;
    state.dashboard().refresh(&auth.current, tenant).await?;
    Ok(HttpResponse::Ok().json(RefreshResponse {
        success: true,
        message: "Cache cleared. Next request will fetch fresh data.".to_owned(),
    }))
}

/// A date range's figures (spec §7.4), uncached.
#[utoipa::path(
    tag = "dashboard",
    params(RangeQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "`{tenantId, startDate, endDate, metrics}`", body = Object),
        (status = 400, description = "Missing or malformed date, start after end, more than 366 days, or a future date (`VALIDATION_FAILED`)", body = ErrorBody),
        (status = 401, description = "No or expired session", body = ErrorBody),
        (status = 403, description = "Onboarding not finished", body = ErrorBody),
        (status = 503, description = "State Manager failing", body = ErrorBody),
    )
)]
#[get("/api/v1/dashboard/metrics/range")]
pub(crate) async fn range(
    auth: Authenticated,
    state: web::Data<AppState>,
    query: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant_for(&auth, Capability::ViewDashboard)?;
    let dashboard = state.dashboard();
    let range = parse_range(&query, dashboard.today())?;
    let report = dashboard.range(tenant, range).await?;
    Ok(HttpResponse::Ok().json(report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use time::macros::date;

    fn q(start: Option<&str>, end: Option<&str>) -> RangeQuery {
        RangeQuery {
            start_date: start.map(str::to_owned),
            end_date: end.map(str::to_owned),
        }
    }

    fn fields(e: ApiError) -> Vec<String> {
        assert_eq!(e.code(), ErrorCode::ValidationFailed);
        let body = serde_json::to_value(
            actix_web::ResponseError::error_response(&e)
                .extensions()
                .get::<crate::error::ErrorPayload>()
                .map(|p| p.0.clone())
                .unwrap(),
        )
        .unwrap();
        body["details"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn period_defaults_to_today_and_rejects_others() {
        assert_eq!(parse_period(None).unwrap(), Period::Today);
        assert_eq!(parse_period(Some("month")).unwrap(), Period::Month);
        assert_eq!(fields(parse_period(Some("year")).unwrap_err()), ["period"]);
        assert_eq!(fields(parse_period(Some("")).unwrap_err()), ["period"]);
    }

    #[test]
    fn range_rules() {
        let today = date!(2026 - 02 - 12);
        let ok = parse_range(&q(Some("2026-02-01"), Some("2026-02-12")), today).unwrap();
        assert_eq!(ok.days(), 12);
        let bad = |s, e| fields(parse_range(&q(s, e), today).unwrap_err());
        assert_eq!(bad(None, None), ["startDate", "endDate"]);
        assert_eq!(bad(Some("2026-2-1"), Some("2026-02-12")), ["startDate"]);
        assert_eq!(bad(Some("2026-02-01"), Some("2026-02-30")), ["endDate"]);
        assert_eq!(bad(Some("+2026-02-01"), Some("2026-02-12")), ["startDate"]);
        assert_eq!(bad(Some("2026-02-10"), Some("2026-02-01")), ["startDate"]);
        assert_eq!(bad(Some("2025-01-01"), Some("2026-02-12")), ["startDate"]);
        assert_eq!(bad(Some("2026-02-01"), Some("2026-02-13")), ["endDate"]);
    }
}
