//! `GET /api/v1/realtime/presence`: who is connected to the caller's tenant right now, across
//! every instance (the registry each instance refreshes; a crashed instance's sockets drop out
//! within a minute).

use crate::error::{ApiError, ErrorBody};
use crate::extract::Authenticated;
use crate::routes::dashboard::tenant_for;
use crate::state::AppState;
use actix_web::{HttpResponse, get, web};
use portal_domain::auth::Capability;
use portal_domain::ports::realtime::TenantPresence;
use serde::Serialize;
use utoipa::ToSchema;

/// One signed-in user with live sockets.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OnlineUser {
    /// The user (an agent, admin or viewer of the tenant).
    #[schema(example = "user-123")]
    pub user_id: String,
    /// Their open sockets (tabs, widgets), on every instance.
    #[schema(minimum = 1)]
    pub connections: u32,
}

/// The tenant's live sockets.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PresenceResponse {
    /// The caller's tenant.
    #[schema(format = Uuid)]
    pub tenant_id: String,
    /// Open sockets of the tenant, on every instance.
    #[schema(minimum = 0)]
    pub connections: u64,
    /// Each user with at least one open socket, sorted by `userId`.
    pub users: Vec<OnlineUser>,
}

impl PresenceResponse {
    fn new(tenant: portal_domain::model::TenantId, live: &TenantPresence) -> Self {
        Self {
            tenant_id: tenant.to_string(),
            connections: live.sockets(),
            users: live
                .users
                .iter()
                .map(|(user, n)| OnlineUser {
                    user_id: user.to_string(),
                    connections: *n,
                })
                .collect(),
        }
    }
}

/// The caller's tenant's live WebSockets and who holds them.
#[utoipa::path(
    tag = "realtime",
    security(("session" = [])),
    responses(
        (status = 200, description = "Open sockets of the caller's tenant across every instance, and the users holding them", body = PresenceResponse),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: onboarding not finished", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (the user's API rate limit)", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the session store or the socket registry is unavailable", body = ErrorBody),
    )
)]
#[get("/api/v1/realtime/presence")]
pub(crate) async fn presence(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant_for(&auth, Capability::Monitor)?;
    let live = state.realtime().hub.presence(tenant).await?;
    Ok(HttpResponse::Ok().json(PresenceResponse::new(tenant, &live)))
}
