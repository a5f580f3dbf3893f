//! The simulated State Manager over HTTP (`/api/v1/conversations...`, `/api/v1/metrics/...`).

use super::{Sims, bad_request, error, unavailable};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use portal_domain::model::{
    ConversationId, ConversationQuery, ConversationStatus, DateRange, Period, TenantId,
};
use portal_domain::ports::downstream::StateManagerError;
use serde::Deserialize;
use serde_json::json;

fn sm_error(e: StateManagerError) -> HttpResponse {
    match e {
        StateManagerError::NotFound => error(StatusCode::NOT_FOUND, "not_found", "not found"),
        StateManagerError::Failure(_) => unavailable(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    tenant_id: String,
    page: Option<u32>,
    limit: Option<u32>,
    status: Option<ConversationStatus>,
}

pub(super) async fn conversations(sims: web::Data<Sims>, q: web::Query<ListQuery>) -> HttpResponse {
    let q = q.into_inner();
    let Ok(tenant) = q.tenant_id.parse::<TenantId>() else {
        return bad_request("tenantId is not a tenant ID");
    };
    let query = ConversationQuery {
        page: q.page.unwrap_or(1).max(1),
        limit: q
            .limit
            .unwrap_or(ConversationQuery::DEFAULT_LIMIT)
            .clamp(1, ConversationQuery::MAX_LIMIT),
        status: q.status,
    };
    match sims.state_manager.conversations(tenant, query).await {
        Ok(page) => HttpResponse::Ok().json(page),
        Err(e) => sm_error(e),
    }
}

pub(super) async fn conversation(sims: web::Data<Sims>, path: web::Path<String>) -> HttpResponse {
    let Ok(id) = path.parse::<ConversationId>() else {
        return sm_error(StateManagerError::NotFound);
    };
    match sims.state_manager.conversation(id).await {
        Ok(c) => HttpResponse::Ok().json(c),
        Err(e) => sm_error(e),
    }
}

pub(super) async fn messages(sims: web::Data<Sims>, path: web::Path<String>) -> HttpResponse {
    let Ok(id) = path.parse::<ConversationId>() else {
        return sm_error(StateManagerError::NotFound);
    };
    match sims.state_manager.messages(id).await {
        Ok(m) => HttpResponse::Ok().json(json!({ "data": m })),
        Err(e) => sm_error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MetricsQuery {
    period: Option<Period>,
    start_date: Option<String>,
    end_date: Option<String>,
}

fn ymd(s: &str) -> Option<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format).ok()
}

pub(super) async fn metrics(
    sims: web::Data<Sims>,
    path: web::Path<String>,
    q: web::Query<MetricsQuery>,
) -> HttpResponse {
    let Ok(tenant) = path.parse::<TenantId>() else {
        return sm_error(StateManagerError::NotFound);
    };
    let q = q.into_inner();
    let result = match (q.start_date.as_deref(), q.end_date.as_deref()) {
        (Some(start), Some(end)) => {
            let today = sims.platform.state().now().date();
            let range = match (ymd(start), ymd(end)) {
                (Some(s), Some(e)) => DateRange::new(s, e, today),
                _ => return bad_request("startDate and endDate must be YYYY-MM-DD"),
            };
            let Ok(range) = range else {
                return bad_request("invalid date range");
            };
            sims.state_manager.metrics_range(tenant, range).await
        }
        _ => {
            sims.state_manager
                .metrics(tenant, q.period.unwrap_or_default())
                .await
        }
    };
    match result {
        Ok(m) => HttpResponse::Ok().json(m),
        Err(e) => sm_error(e),
    }
}
