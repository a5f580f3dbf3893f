//! `GET /tenant/{tenantId}/portal`: the real-time WebSocket (spec §10, decisions §7; the
//! protocol is in `docs/websocket-protocol.md`), and `GET /api/v1/realtime/presence`.
//!
//! The upgrade is refused **before** the handshake with the usual error body: 401 without a
//! live session (or with a reused/expired ticket), 403 for a bad `Origin` or another tenant,
//! 400 for a malformed `since`, 429 over the API rate limit (each upgrade is one request) or
//! over a connection cap (per session, per user, per instance). Each accepted socket
//! registers with the instance's [`Hub`] and runs one task that recovers what the client
//! missed, writes the hub's events, answers client events, pings, drops silent peers, and
//! re-checks the session periodically.
//!
//! # Layout
//! - here: the upgrade and the settings;
//! - `socket`: the per-socket task;
//! - `incoming`: client messages reassembled under one size limit;
//! - `presence`: `GET /api/v1/realtime/presence`.

use crate::error::{ApiError, ConnectionCap, ErrorBody, ErrorCode, ErrorDetails};
use crate::extract::{api_rate_key, apply_limit, session_cookie_removal, signed_cookie};
use crate::state::{AppState, SESSION_COOKIE};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use portal_domain::auth::{Capability, CurrentSession, SessionError};
use portal_domain::model::EventId;
use portal_domain::ports::realtime::SocketOwner;
use portal_domain::realtime::{Hub, Refusal};
use portal_domain::secret::ExposeSecret;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use utoipa::IntoParams;

mod incoming;
pub(crate) mod presence;
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
    /// The range the reconnect delay suggested in the going-away close (1001) is drawn from.
    pub reconnect_delay: (Duration, Duration),
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            session_check_interval: Duration::from_secs(60),
            max_frame_bytes: 64 * 1024,
            close_timeout: Duration::from_secs(2),
            reconnect_delay: (Duration::from_millis(500), Duration::from_millis(5_000)),
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
    /// The `id` of the last event the client received: the socket first sends every event
    /// after it, then `recovered`. Two decimal numbers joined by `-`.
    #[param(example = "1767225600000-0", pattern = r"^[0-9]{1,20}-[0-9]{1,20}$")]
    pub since: Option<String>,
}

impl std::fmt::Debug for PortalQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalQuery")
            .field("ticket", &self.ticket.as_ref().map(|_| "[REDACTED]"))
            .field("since", &self.since)
            .finish()
    }
}

/// The refusal of an upgrade over a connection cap: 429 `RATE_LIMIT_EXCEEDED` with the cap
/// in `details` (not a rate limit: no `Retry-After`; a socket closing makes room).
fn cap_refusal(refusal: Refusal) -> ApiError {
    let (limit, max, message) = match refusal {
        Refusal::Session(max) => (
            ConnectionCap::Session,
            u64::from(max),
            "Too many open WebSockets for this session",
        ),
        Refusal::User(max) => (
            ConnectionCap::User,
            u64::from(max),
            "Too many open WebSockets for this user",
        ),
        Refusal::Instance(max) => (
            ConnectionCap::Instance,
            u64::try_from(max).unwrap_or(u64::MAX),
            "This server holds as many WebSockets as it may; try again shortly",
        ),
    };
    tracing::warn!(
        limit = limit.as_str(),
        max,
        "WebSocket refused over a connection cap"
    );
    ApiError::new(ErrorCode::RateLimitExceeded, message).with_details(ErrorDetails {
        limit: Some(limit),
        max: Some(max),
        ..ErrorDetails::default()
    })
}

/// Opens the tenant's real-time socket.
#[utoipa::path(
    tag = "realtime",
    params(("tenantId" = String, Path, format = Uuid, description = "The session's tenant"), PortalQuery),
    security(("session" = []), ()),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol of docs/websocket-protocol.md",
            headers(("Upgrade" = String, description = "`websocket`"))),
        (status = 400, description = "VALIDATION_FAILED: `tenantId` is not a UUID, `since` is not an event id, or not a WebSocket upgrade request (details.fields[0].field names which)", body = ErrorBody),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED (also a reused or expired ticket)", body = ErrorBody),
        (status = 403, description = "FORBIDDEN (Origin not allowed, onboarding unfinished) or TENANT_ISOLATION_VIOLATION", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED: over the user's API rate limit (each upgrade counts once; `Retry-After` and `RateLimit-*` headers), or over a connection cap (`details.limit`: `session`, `user` or `instance`; `details.max`)", body = ErrorBody,
            headers(
                ("Retry-After" = u64, description = "Seconds until the rate limit has room (rate limit only)"),
                ("RateLimit-Limit" = u32, description = "The API rate limit (rate limit only)"),
                ("RateLimit-Remaining" = u32, description = "Requests left in the window (rate limit only)"),
                ("RateLimit-Reset" = u64, description = "Seconds until the window resets (rate limit only)"),
            )
        ),
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
    let since: Option<EventId> = query
        .since
        .as_deref()
        .map(str::parse::<EventId>)
        .transpose()
        .map_err(|e| ApiError::validation("since", e.to_string()))?;
    let wiring = state.realtime().clone();
    let current = authenticate(&req, &state, query.ticket.as_deref())
        .await?
        .with_context(crate::extract::request_context(&req, state.web()));
    let tenant = current
        .authorize(Capability::Monitor)?
        .ok_or_else(|| ApiError::internal("monitor capability without a tenant"))?;
    crate::tenant_guard::check_path(&req, &current)?;
    let user = &current.session.user_id;
    apply_limit(&req, &state, "api", &api_rate_key(user), state.limits().api).await?;
    let permit = wiring
        .hub
        .admit(SocketOwner {
            tenant,
            user: user.clone(),
            session: current.key.clone(),
        })
        .await
        .map_err(cap_refusal)?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::validation("upgrade", "A WebSocket upgrade request is required").with_cause(e)
    })?;
    let subscription = permit.register();
    tracing::info!(
        tenant_id = %tenant,
        user_id = %current.session.user_id,
        session = current.key.short(),
        since = since.as_ref().map(tracing::field::display),
        "WebSocket opened"
    );
    let settings = wiring.settings;
    let messages = incoming::Messages::new(stream, settings.max_frame_bytes);
    let socket = Socket {
        session,
        signal: subscription.signal.clone(),
        current,
        tenant,
        state: state.get_ref().clone(),
        settings,
        socket: crate::connections::socket_of(&req),
    };
    actix_web::rt::spawn(socket.run(subscription, messages, since));
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
