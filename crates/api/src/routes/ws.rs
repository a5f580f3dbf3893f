//! `GET /tenant/{tenantId}/portal`: the real-time WebSocket (spec §10, decisions §7; the
//! protocol is in `docs/websocket-protocol.md`).
//!
//! The upgrade is refused **before** the handshake with the usual error body: 401 without a
//! live session (or with a reused/expired ticket), 403 for a bad `Origin` or another tenant.
//! Each accepted socket registers with the instance's [`Hub`] and runs one task that writes
//! the hub's frames, answers client events, pings, drops silent peers, and re-checks the
//! session periodically.

use crate::error::{ApiError, ErrorBody, ErrorCode, FieldProblem};
use crate::extract::{session_cookie_removal, signed_cookie};
use crate::input::Problems;
use crate::routes::widget::{SendBody, refusal, rfc3339};
use crate::state::{AppState, SESSION_COOKIE};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::{AggregatedMessage, CloseCode, Closed, ProtocolError};
use portal_domain::auth::{Capability, CurrentSession, SessionError};
use portal_domain::model::TenantId;
use portal_domain::realtime::{CloseReason, CloseSignal, Hub};
use portal_domain::secret::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};
use utoipa::IntoParams;

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
pub struct PortalQuery {
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
    params(("tenantId" = String, Path, description = "The session's tenant"), PortalQuery),
    security(("session" = []), ()),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol of docs/websocket-protocol.md"),
        (status = 401, description = "NO_SESSION or SESSION_EXPIRED (also a reused or expired ticket)", body = ErrorBody),
        (status = 403, description = "FORBIDDEN (Origin not allowed, onboarding unfinished) or TENANT_ISOLATION_VIOLATION", body = ErrorBody),
        (status = 503, description = "Session store unavailable", body = ErrorBody),
    )
)]
#[get("/tenant/{tenantId}/portal")]
pub async fn portal(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PortalQuery>,
) -> Result<HttpResponse, ApiError> {
    let requested: TenantId = path
        .parse()
        .map_err(|_| ApiError::validation("tenantId", "must be a UUID"))?;
    let wiring = state.realtime().clone();
    let current = authenticate(&req, &state, query.ticket.as_deref()).await?;
    let tenant = current
        .authorize(Capability::Monitor)?
        .ok_or_else(|| ApiError::internal("monitor capability without a tenant"))?;
    if tenant != requested {
        tracing::warn!(
            security_event = "tenant_isolation_violation",
            user_id = %current.session.user_id,
            session_tenant = %tenant,
            requested_tenant = %requested,
            "WebSocket for another tenant refused"
        );
        return Err(ApiError::tenant_isolation());
    }
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
            origin = ?origin.and_then(|o| o.to_str().ok()),
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

/// Runs one write, unless the hub asks to close first (a peer that stopped reading would
/// otherwise block the task forever on the full send buffer).
async fn guarded(
    signal: &CloseSignal,
    write: impl Future<Output = Result<(), Closed>>,
) -> Result<(), End> {
    tokio::select! {
        biased;
        reason = signal.closed() => Err(End::from(reason)),
        r = write => r.map_err(|_| End::Gone),
    }
}

/// How a socket ends.
#[derive(Debug)]
enum End {
    /// Send a close frame with this code.
    Close(CloseCode, &'static str),
    /// Send `session_expired`, then close with 1008.
    SessionExpired,
    /// The peer is gone; nothing to send.
    Gone,
}

impl From<CloseReason> for End {
    fn from(r: CloseReason) -> Self {
        match r {
            CloseReason::SlowConsumer => End::Close(CloseCode::Again, "slow consumer"),
            CloseReason::SessionEnded => End::SessionExpired,
            CloseReason::Shutdown => End::Close(CloseCode::Away, "server shutting down"),
        }
    }
}

/// One socket's task state.
struct Socket {
    session: actix_ws::Session,
    /// The hub's close signal, raced against every send so a blocked write cannot hide it.
    signal: Arc<CloseSignal>,
    /// The session, refreshed at every re-check (role changes apply to later sends).
    current: CurrentSession,
    tenant: TenantId,
    state: AppState,
    settings: RealtimeSettings,
}

/// A client frame.
#[derive(Deserialize)]
struct ClientFrame {
    event: String,
    #[serde(default)]
    data: Value,
}

/// `data` of `send_message`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendData {
    /// The same fields as the REST send.
    #[serde(flatten)]
    send: SendBody,
    /// The idempotency key.
    client_message_id: Option<String>,
}

fn error_frame(
    code: ErrorCode,
    message: &str,
    details: Option<Value>,
    client_message_id: Option<&str>,
) -> String {
    let mut data = json!({ "code": code.as_str(), "message": message });
    if let Some(d) = details {
        data["details"] = d;
    }
    if let Some(id) = client_message_id {
        data["clientMessageId"] = json!(id);
    }
    json!({ "event": "error", "data": data }).to_string()
}

fn validation_frame(problems: Vec<FieldProblem>, client_message_id: Option<&str>) -> String {
    error_frame(
        ErrorCode::ValidationFailed,
        "Input validation failed",
        Some(json!({ "fields": problems })),
        client_message_id,
    )
}

impl Socket {
    async fn run(
        mut self,
        mut subscription: portal_domain::realtime::Subscription,
        mut stream: actix_ws::AggregatedMessageStream,
    ) {
        let s = self.settings.clone();
        let start = Instant::now();
        let mut ping = tokio::time::interval_at(start + s.ping_interval, s.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut check =
            tokio::time::interval_at(start + s.session_check_interval, s.session_check_interval);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let idle = tokio::time::sleep(s.idle_timeout);
        tokio::pin!(idle);
        let signal = self.signal.clone();

        let end = loop {
            let step = tokio::select! {
                biased;
                reason = signal.closed() => Err(End::from(reason)),
                frame = subscription.frames.recv() => match frame {
                    Some(frame) => self.send(frame.as_ref()).await,
                    None => Err(End::Gone),
                },
                msg = stream.recv() => {
                    idle.as_mut().reset(Instant::now() + s.idle_timeout);
                    self.on_message(msg).await
                }
                _ = ping.tick() => guarded(&self.signal, self.session.ping(b"")).await,
                _ = &mut idle => Err(End::Close(CloseCode::Away, "idle timeout")),
                _ = check.tick() => Box::pin(self.recheck()).await,
            };
            if let Err(end) = step {
                break end;
            }
        };
        // Stop receiving hub frames before the (possibly slow) close.
        drop(subscription);
        tracing::info!(tenant_id = %self.tenant, session = self.current.key.short(), end = ?end, "WebSocket closed");
        Box::pin(self.finish(end)).await;
    }

    async fn send(&mut self, text: &str) -> Result<(), End> {
        guarded(&self.signal, self.session.text(text.to_owned())).await
    }

    async fn on_message(
        &mut self,
        msg: Option<Result<AggregatedMessage, ProtocolError>>,
    ) -> Result<(), End> {
        match msg {
            None => Err(End::Gone),
            Some(Err(ProtocolError::Overflow)) => {
                Err(End::Close(CloseCode::Size, "message too big"))
            }
            Some(Err(e)) => {
                tracing::info!(error = %e, "WebSocket protocol error");
                Err(End::Close(CloseCode::Protocol, "protocol error"))
            }
            Some(Ok(AggregatedMessage::Close(_))) => Err(End::Close(CloseCode::Normal, "")),
            Some(Ok(AggregatedMessage::Ping(bytes))) => {
                guarded(&self.signal, self.session.pong(&bytes)).await
            }
            Some(Ok(AggregatedMessage::Pong(_))) => Ok(()),
            Some(Ok(AggregatedMessage::Binary(_))) => {
                let frame = error_frame(
                    ErrorCode::ValidationFailed,
                    "Binary frames are not supported; send JSON text frames",
                    None,
                    None,
                );
                self.send(&frame).await
            }
            Some(Ok(AggregatedMessage::Text(text))) => {
                // Boxed: the send-message path is the largest future of this task; inline,
                // every idle socket would carry room for it (memory per socket).
                let reply = Box::pin(self.on_text(&text)).await;
                self.send(&reply).await
            }
        }
    }

    /// Answers one client text frame.
    async fn on_text(&self, text: &str) -> String {
        let frame: ClientFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(_) => {
                return error_frame(
                    ErrorCode::ValidationFailed,
                    "Malformed frame: expected JSON {\"event\": ..., \"data\": {...}}",
                    None,
                    None,
                );
            }
        };
        match frame.event.as_str() {
            "ping" => json!({ "event": "pong", "data": {} }).to_string(),
            "send_message" => self.send_message(frame.data).await,
            _ => error_frame(
                ErrorCode::ValidationFailed,
                "Unknown event; expected send_message or ping",
                None,
                None,
            ),
        }
    }

    async fn send_message(&self, data: Value) -> String {
        let Ok(data) = serde_json::from_value::<SendData>(data) else {
            return validation_frame(
                vec![FieldProblem {
                    field: "data".into(),
                    message: "send_message data must be an object of strings".into(),
                }],
                None,
            );
        };
        let client_id = data.client_message_id.as_deref();
        if let Err(denied) = self.current.authorize(Capability::SendMessages) {
            return error_frame(ErrorCode::Forbidden, &denied.to_string(), None, client_id);
        }
        if let Some(refused) = self.rate_limited(client_id).await {
            return refused;
        }
        let key = match client_id {
            Some(k) => k,
            None => {
                let mut problems = data
                    .send
                    .try_into_domain(None)
                    .err()
                    .map(Problems::into_vec)
                    .unwrap_or_default();
                problems.push(FieldProblem {
                    field: "clientMessageId".into(),
                    message: "clientMessageId is required".into(),
                });
                return validation_frame(problems, None);
            }
        };
        let request = match data.send.try_into_domain(Some(("clientMessageId", key))) {
            Ok(r) => r,
            Err(problems) => return validation_frame(problems.into_vec(), client_id),
        };
        match self
            .state
            .widget()
            .send(self.tenant, &self.current.session.user_id, request)
            .await
        {
            Ok(receipt) => json!({
                "event": "send_ack",
                "data": {
                    "clientMessageId": key,
                    "message_id": receipt.message_id.as_str(),
                    "status": receipt.status,
                    "queued_at": rfc3339(receipt.queued_at),
                }
            })
            .to_string(),
            Err(e) => {
                let (code, message) = refusal(&e);
                if code == ErrorCode::ServiceUnavailable {
                    tracing::error!(error = %e, "WebSocket send failed; nothing was sent");
                }
                error_frame(code, message, None, client_id)
            }
        }
    }

    /// Sends count against the user's API rate limit, as over REST; a limiter failure lets
    /// the send through (as the REST extractor does).
    async fn rate_limited(&self, client_id: Option<&str>) -> Option<String> {
        let key = format!("api:{}", self.current.session.user_id);
        match self
            .state
            .limiter()
            .hit(&key, self.state.limits().api, 1)
            .await
        {
            Ok(d) if !d.allowed => {
                self.state.telemetry().rate_limited("api");
                tracing::warn!(scope = "api", "rate limit exceeded (WebSocket send)");
                Some(error_frame(
                    ErrorCode::RateLimitExceeded,
                    "Too many requests, please try again later",
                    Some(json!({ "retryAfter": d.reset_after.as_secs().max(1) })),
                    client_id,
                ))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(scope = "api", error = %e, "rate limiter unavailable; allowing send");
                None
            }
        }
    }

    /// Re-reads the session: an ended one closes the socket with `session_expired`.
    async fn recheck(&mut self) -> Result<(), End> {
        match self
            .state
            .auth()
            .authenticate_key(self.current.key.clone())
            .await
        {
            Ok(current) => {
                self.current = current;
                Ok(())
            }
            Err(SessionError::Expired) => Err(End::SessionExpired),
            Err(SessionError::Store(e)) => {
                // Fail open for an open socket: the next check, or a revocation, closes it.
                tracing::warn!(error = %e, "WebSocket session re-check failed");
                Ok(())
            }
        }
    }

    /// Sends the last words (bounded in time: a full send buffer must not keep the task).
    async fn finish(self, end: End) {
        let timeout = self.settings.close_timeout;
        let mut session = self.session;
        let close = match end {
            End::Gone => return,
            End::Close(code, reason) => (code, reason),
            End::SessionExpired => {
                let frame = json!({ "event": "session_expired", "data": {} }).to_string();
                if tokio::time::timeout(timeout, session.text(frame))
                    .await
                    .map_or(true, |r| r.is_err())
                {
                    return;
                }
                (CloseCode::Policy, "session expired")
            }
        };
        let reason = actix_ws::CloseReason {
            code: close.0,
            description: (!close.1.is_empty()).then(|| close.1.to_owned()),
        };
        let _ = tokio::time::timeout(timeout, session.close(Some(reason))).await;
    }
}
