//! One accepted socket's task: writes the hub's frames, answers client events (`ping`,
//! `send_message`), pings, drops silent peers, re-checks the session, and closes with the
//! right code.

use super::RealtimeSettings;
use crate::error::{ErrorCode, FieldProblem};
use crate::input::Problems;
use crate::routes::widget::{SendBody, refusal, rfc3339};
use crate::state::AppState;
use actix_ws::{AggregatedMessage, CloseCode, Closed, ProtocolError};
use portal_domain::auth::{Capability, CurrentSession, SessionError};
use portal_domain::model::TenantId;
use portal_domain::realtime::{CloseReason, CloseSignal};
use serde::Deserialize;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use tokio::time::{Instant, MissedTickBehavior};

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

impl End {
    /// For the log line.
    fn as_str(&self) -> &'static str {
        match self {
            End::Close(_, reason) => reason,
            End::SessionExpired => "session expired",
            End::Gone => "peer gone",
        }
    }
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
pub(super) struct Socket {
    pub(super) session: actix_ws::Session,
    /// The hub's close signal, raced against every send so a blocked write cannot hide it.
    pub(super) signal: Arc<CloseSignal>,
    /// The session, refreshed at every re-check (role changes apply to later sends).
    pub(super) current: CurrentSession,
    pub(super) tenant: TenantId,
    pub(super) state: AppState,
    pub(super) settings: RealtimeSettings,
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
    /// Runs until the socket ends; then closes it.
    pub(super) async fn run(
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
        tracing::info!(tenant_id = %self.tenant, session = self.current.key.short(), end = end.as_str(), "WebSocket closed");
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
            .send(&self.current, self.tenant, request)
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
                // The same socket: the upgrade request's context stays (for the audit trail).
                self.current = current.with_context(self.current.context.clone());
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
