//! `GET /tenant/{tenantId}/portal`: the real-time WebSocket (spec §10, decisions §7; the
//! protocol is in `docs/websocket-protocol.md`).
//!
//! The upgrade is refused **before** the handshake with the usual error body: 401 without a
//! live session (or with a reused/expired ticket), 403 for a bad `Origin` or another tenant.
//! Each accepted socket registers with the instance's [`Hub`] and runs one task that writes
//! the hub's frames, answers client events, pings, drops silent peers, and re-checks the
//! session periodically.

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{session_cookie_removal, signed_cookie};
use crate::state::{AppState, SESSION_COOKIE};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use portal_domain::auth::{Capability, CurrentSession, SessionError};
use portal_domain::realtime::Hub;
use portal_domain::secret::ExposeSecret;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use utoipa::IntoParams;

mod socket;

use socket::Socket;

/// Liveness and limits of the sockets.
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    /// How often the server sends a WebSocket Ping (15 s).
    pub ping_interval: Duration,
    /// A peer that sent nothing (not even a Pong) for this long is dropped (30 s).
    pub idle_timeout: Duration,
    /// How often the session is re-checked, so an expired session closes its sockets (60 s).
    pub session_check_interval: Duration,
    /// Largest accepted client frame or message; a bigger one closes with 1009 (64 KiB).
    pub max_frame_bytes: usize,
    /// How long a close (or the `session_expired` event) may wait for a full send buffer
    /// before the connection is just dropped.
    pub close_timeout: Duration,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            session_check_interval: Duration::from_secs(60),
            max_frame_bytes: 64 * 1024,
            close_timeout: Duration::from_secs(2),
        }
    }
}

/// The real-time parts of the app state: the instance's hub and the socket settings.
#[derive(Debug, Clone)]
pub struct RealtimeWiring {
    /// The instance's registry of sockets (fed by the one bus subscription).
    pub hub: Arc<Hub>,
    /// Liveness and limits.
    pub settings: RealtimeSettings,
}

/// Query of the upgrade request.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PortalQuery {
    /// Single-use ticket from `POST /api/v1/auth/ws-ticket` (instead of cookie + Origin).
    pub ticket: Option<String>,
}

impl std::fmt::Debug for PortalQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalQuery")
            .field("ticket", &self.ticket.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Opens the tenant's real-time socket.
#[utoipa::path(
    tag = "realtime",
    params(("tenantId" = String, Path, format = Uuid, description = "The session's tenant"), PortalQuery),
    security(("session" = []), ()),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol of docs/websocket-protocol.md",
            headers(("Upgrade" = String, description = "`websocket`"))),
        (status = 400, description = "VALIDATION_FAILED: not a WebSocket upgrade request (details.fields[0].field is `upgrade`)", body = ErrorBody),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED (also a reused or expired ticket)", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: Origin not allowed, or onboarding unfinished", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the session store is unavailable", body = ErrorBody),
    )
)]
#[get("/tenant/{tenantId}/portal")]
pub(crate) async fn portal(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    query: web::Query<PortalQuery>,
) -> Result<HttpResponse, ApiError> {
    let wiring = state.realtime().clone();
    let current = authenticate(&req, &state, query.ticket.as_deref())
        .await?
        .with_context(crate::extract::request_context(&req, state.web()));
    let tenant = current
        .authorize(Capability::Monitor)?
        .ok_or_else(|| ApiError::internal("monitor capability without a tenant"))?;
    crate::tenant_guard::check_path(&req, &current)?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::validation("upgrade", "A WebSocket upgrade request is required").with_cause(e)
    })?;
    let subscription = wiring.hub.register(tenant, current.key.clone());
    tracing::info!(
        tenant_id = %tenant,
        user_id = %current.session.user_id,
        session = current.key.short(),
        "WebSocket opened"
    );
    let settings = wiring.settings;
    let stream = stream
        .max_frame_size(settings.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(settings.max_frame_bytes);
    let socket = Socket {
        session,
        signal: subscription.signal.clone(),
        current,
        tenant,
        state: state.get_ref().clone(),
        settings,
    };
    actix_web::rt::spawn(socket.run(subscription, stream));
    Ok(response)
}

/// A ticket (single use), or the session cookie plus an allowed `Origin`.
async fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    ticket: Option<&str>,
) -> Result<CurrentSession, ApiError> {
    if let Some(ticket) = ticket {
        return state.auth().redeem_ws_ticket(ticket).await.map_err(|e| {
            if matches!(e, SessionError::Expired) {
                tracing::info!("WebSocket ticket unknown, expired or already used");
            }
            ApiError::from(e)
        });
    }
    let web = state.web();
    let origin = req.headers().get(header::ORIGIN);
    let allowed = origin.is_some_and(|o| o.as_bytes() == web.frontend_origin().as_bytes());
    if !allowed {
        tracing::warn!(
            security_event = "websocket_origin_refused",
            origin = origin.and_then(|o| o.to_str().ok()),
            "WebSocket upgrade from a foreign origin refused"
        );
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "Origin not allowed for this WebSocket",
        ));
    }
    let raw = match signed_cookie(req, web, SESSION_COOKIE) {
        None => return Err(ApiError::no_session()),
        Some(Err(())) => {
            return Err(ApiError::session_expired().with_cookie(session_cookie_removal(web)));
        }
        Some(Ok(raw)) => raw,
    };
    state
        .auth()
        .authenticate(raw.expose_secret())
        .await
        .map_err(|e| match e {
            SessionError::Expired => {
                ApiError::session_expired().with_cookie(session_cookie_removal(web))
            }
            other => other.into(),
        })
}
