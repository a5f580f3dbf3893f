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
use portal_domain::dashboard::{DashboardError, RangeReport, StatsView};
use portal_domain::model::{DateRange, DateRangeError, Figures, Period, TenantId};
use serde::{Deserialize, Serialize};
use time::Date;
use time::OffsetDateTime;
use time::macros::format_description;
use utoipa::{IntoParams, ToSchema};

/// Query of `GET /api/v1/dashboard/stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsQuery {
    /// `today` (default), `week` or `month`.
    #[param(inline, value_type = Option<PeriodName>)]
    pub period: Option<String>,
}

/// Query of `GET /api/v1/dashboard/metrics/range`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RangeQuery {
    /// First day, `YYYY-MM-DD` (UTC).
    #[param(rename = "startDate", required = true, value_type = String, format = Date)]
    pub start_date: Option<String>,
    /// Last day (inclusive), `YYYY-MM-DD` (UTC); not after today, at most 366 days after
    /// `startDate`.
    #[param(rename = "endDate", required = true, value_type = String, format = Date)]
    pub end_date: Option<String>,
}

/// A reporting period.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PeriodName {
    /// Since midnight UTC.
    Today,
    /// The last 7 days.
    Week,
    /// The last 30 days.
    Month,
}

impl From<Period> for PeriodName {
    fn from(p: Period) -> Self {
        match p {
            Period::Today => Self::Today,
            Period::Week => Self::Week,
            Period::Month => Self::Month,
        }
    }
}

/// The figures of a period or a date range (spec §7.2, §7.4).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetricsFigures {
    /// All messages.
    pub total_messages: u64,
    /// Accepted by WhatsApp.
    pub sent_count: u64,
    /// Delivered to the handset.
    pub delivered_count: u64,
    /// Read by the customer.
    pub read_count: u64,
    /// Failed.
    pub failed_count: u64,
    /// Delivered / total as a percentage with one decimal (`"97.5"`; `"0.0"` with no
    /// messages).
    #[schema(pattern = r"^[0-9]{1,3}\.[0-9]$")]
    pub success_rate: String,
    /// Conversations currently active.
    pub active_conversations: u64,
    /// Distinct customers.
    pub unique_customers: u64,
}

impl From<&Figures> for MetricsFigures {
    fn from(f: &Figures) -> Self {
        Self {
            total_messages: f.total_messages,
            sent_count: f.sent_count,
            delivered_count: f.delivered_count,
            read_count: f.read_count,
            failed_count: f.failed_count,
            success_rate: f.success_rate.clone(),
            active_conversations: f.active_conversations,
            unique_customers: f.unique_customers,
        }
    }
}

/// `GET /api/v1/dashboard/stats` (spec §7.2).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatsResponse {
    /// The figures.
    #[serde(flatten)]
    pub figures: MetricsFigures,
    /// The period they cover.
    pub period: PeriodName,
    /// When they were fetched from the State Manager.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_updated: OffsetDateTime,
    /// Present, and `true`, only when the State Manager is failing and these are the last
    /// known figures.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub stale: bool,
}

impl From<&StatsView> for StatsResponse {
    fn from(view: &StatsView) -> Self {
        Self {
            figures: MetricsFigures::from(&view.stats.figures),
            period: view.stats.period.into(),
            last_updated: view.stats.last_updated,
            stale: view.stale,
        }
    }
}

/// `GET /api/v1/dashboard/metrics/range` (spec §7.4).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RangeResponse {
    /// The tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// First day.
    #[schema(format = Date)]
    pub start_date: String,
    /// Last day (inclusive).
    #[schema(format = Date)]
    pub end_date: String,
    /// The figures.
    pub metrics: MetricsFigures,
}

impl From<&RangeReport> for RangeResponse {
    fn from(r: &RangeReport) -> Self {
        Self {
            tenant_id: r.tenant_id,
            start_date: r.start_date.clone(),
            end_date: r.end_date.clone(),
            metrics: MetricsFigures::from(&r.metrics),
        }
    }
}

/// `POST /api/v1/dashboard/refresh`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CacheRefreshResponse {
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

/// Parses a strict `YYYY-MM-DD` date (RFC 3339 `full-date`).
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
        (status = 200, description = "The period's figures (spec §7.2); `\"stale\": true` when the State Manager is failing and these are the last known ones", body = StatsResponse),
        (status = 400, description = "VALIDATION_FAILED: bad `period`", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: onboarding not finished", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the State Manager is failing and nothing is cached", body = ErrorBody),
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
    Ok(HttpResponse::Ok().json(StatsResponse::from(&view)))
}

/// Clears the tenant's cached figures and conversation pages (spec §7.3).
#[utoipa::path(
    tag = "dashboard",
    operation_id = "refresh_dashboard",
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Caches cleared", body = CacheRefreshResponse),
        (status = 403, description = "FORBIDDEN: onboarding not finished", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the cache store is unavailable", body = ErrorBody),
    )
)]
#[post("/api/v1/dashboard/refresh")]
pub(crate) async fn refresh(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant_for(&auth, Capability::ViewDashboard)?;
    state.dashboard().refresh(&auth.current, tenant).await?;
    Ok(HttpResponse::Ok().json(CacheRefreshResponse {
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
        (status = 200, description = "The range's figures", body = RangeResponse),
        (status = 400, description = "VALIDATION_FAILED: a missing or malformed date, start after end, more than 366 days, or a date after today", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: onboarding not finished", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the State Manager is failing", body = ErrorBody),
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
    Ok(HttpResponse::Ok().json(RangeResponse::from(&report)))
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
