//! One accepted socket's task: recovers the events the client missed (`?since=` or a first
//! `resume` frame), writes the hub's events, answers client events (`ping`, `send_message`),
//! pings, drops silent peers, re-checks the session, and closes with the right code, promptly.

use super::RealtimeSettings;
use super::incoming::{Broken, Incoming, Messages};
use crate::error::{ErrorCode, FieldProblem};
use crate::input::Problems;
use crate::routes::widget::{SendBody, refusal, rfc3339};
use crate::state::AppState;
use actix_ws::{CloseCode, Closed};
use portal_domain::auth::{Capability, CurrentSession, SessionError};
use portal_domain::model::{EventId, TenantId};
use portal_domain::realtime::{CloseReason, CloseSignal, Replay, Subscription};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use tokio::time::{Instant, MissedTickBehavior};

/// How long a socket opened without `?since=` waits for a first `resume` frame before it
/// starts writing live events (which a later resume would otherwise repeat); at most the idle
/// timeout.
const RESUME_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// The instance is going away: close with 1001 and a suggested reconnect delay.
    Shutdown,
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
            End::Shutdown => "shutdown",
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
            CloseReason::Shutdown => End::Shutdown,
        }
    }
}

/// The reason of the going-away close: JSON a frontend parses, with a reconnect delay drawn
/// at random from the configured range so a deploy's sockets do not all come back at once
/// (≤ 123 bytes, RFC 6455's limit for a close reason).
fn shutdown_reason(settings: &RealtimeSettings) -> String {
    let (min, max) = settings.reconnect_delay;
    let (min, max) = (min.as_millis() as u64, max.as_millis() as u64);
    let spread = max.saturating_sub(min) + 1;
    let delay = min + (uuid::Uuid::new_v4().as_u128() % u128::from(spread)) as u64;
    json!({ "reason": "server shutting down", "reconnectAfterMs": delay }).to_string()
}

/// `{"event":"recovered","data":{"recovered": ...}}`.
fn recovered_frame(recovered: bool) -> String {
    json!({ "event": "recovered", "data": { "recovered": recovered } }).to_string()
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
    /// The connection's socket, shut down for writing once the close frame is out (see
    /// `crate::connections`).
    pub(super) socket: Option<std::net::TcpStream>,
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
    /// Runs until the socket ends; then closes it. `since`: the client's last seen event.
    pub(super) async fn run(
        mut self,
        mut subscription: Subscription,
        mut messages: Messages,
        since: Option<EventId>,
    ) {
        let s = self.settings.clone();
        let start = Instant::now();
        let mut ping = tokio::time::interval_at(start + s.ping_interval, s.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut check =
            tokio::time::interval_at(start + s.session_check_interval, s.session_check_interval);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let signal = self.signal.clone();
        // Without `?since=`, live events wait (queued) until the first frame, which may be
        // `resume`, or until RESUME_WINDOW has passed; the idle timer is the window's timer
        // (no state of its own in every idle socket).
        let mut held = since.is_none();
        let window = s.idle_timeout.min(RESUME_WINDOW);
        let idle = tokio::time::sleep(if held { window } else { s.idle_timeout });
        tokio::pin!(idle);

        // Boxed: the recovery's state is needed once, not in every idle socket.
        let opened = match since {
            Some(since) => Box::pin(self.recover(&mut subscription, since)).await,
            None => Ok(()),
        };
        let end = match opened {
            Err(end) => end,
            Ok(()) => loop {
                let step = tokio::select! {
                    biased;
                    reason = signal.closed() => Err(End::from(reason)),
                    event = subscription.frames.recv(), if !held => match event {
                        Some(event) => {
                            let role = self.current.session.role;
                            self.send(event.frame(role)).await
                        }
                        None => Err(End::Gone),
                    },
                    msg = messages.recv() => {
                        idle.as_mut().reset(Instant::now() + s.idle_timeout);
                        if std::mem::take(&mut held) {
                            Box::pin(self.first_message(&mut subscription, msg)).await
                        } else {
                            self.on_message(msg).await
                        }
                    }
                    _ = ping.tick() => guarded(&self.signal, self.session.ping(b"")).await,
                    _ = &mut idle => {
                        if std::mem::take(&mut held) {
                            idle.as_mut().reset(Instant::now() + s.idle_timeout - window);
                            Ok(())
                        } else {
                            Err(End::Close(CloseCode::Away, "idle timeout"))
                        }
                    }
                    _ = check.tick() => Box::pin(self.recheck()).await,
                };
                if let Err(end) = step {
                    break end;
                }
            },
        };
        // Stop receiving hub events before the (possibly slow) close.
        drop(subscription);
        tracing::info!(tenant_id = %self.tenant, session = self.current.key.short(), end = end.as_str(), "WebSocket closed");
        Box::pin(self.finish(end, messages)).await;
    }

    /// The first frame of a socket opened without `?since=`: `resume` recovers, anything else
    /// is answered as usual.
    async fn first_message(
        &mut self,
        subscription: &mut Subscription,
        first: Option<Result<Incoming, Broken>>,
    ) -> Result<(), End> {
        if let Some(Ok(Incoming::Text(text))) = &first
            && let Ok(frame) = serde_json::from_str::<ClientFrame>(text)
            && frame.event == "resume"
        {
            let since = frame
                .data
                .get("since")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<EventId>().ok());
            return match since {
                Some(since) => self.recover(subscription, since).await,
                None => {
                    let problem = FieldProblem {
                        field: "since".into(),
                        message: "resume needs data.since, an event id like 1767225600000-0".into(),
                    };
                    self.send(&validation_frame(vec![problem], None)).await
                }
            };
        }
        self.on_message(first).await
    }

    /// Sends the events after `since`, then `recovered`, then the live events queued
    /// meanwhile that the replay did not already give: no gap, no duplicate.
    async fn recover(
        &mut self,
        subscription: &mut Subscription,
        since: EventId,
    ) -> Result<(), End> {
        let signal = self.signal.clone();
        let replay = tokio::select! {
            biased;
            reason = signal.closed() => return Err(End::from(reason)),
            replay = subscription.replay(since) => replay,
        };
        let role = self.current.session.role;
        let events = match replay {
            Replay::Gap => {
                tracing::info!(tenant_id = %self.tenant, %since, "WebSocket resumed from a position the history no longer has");
                return self.send(&recovered_frame(false)).await;
            }
            Replay::Events(events) => events,
        };
        let mut replayed = HashSet::with_capacity(events.len());
        for event in &events {
            self.send(event.frame(role)).await?;
            replayed.extend(event.id());
        }
        drop(events);
        self.send(&recovered_frame(true)).await?;
        while let Ok(event) = subscription.frames.try_recv() {
            let seen = event
                .id()
                .is_some_and(|id| id <= since || replayed.contains(&id));
            if !seen {
                self.send(event.frame(role)).await?;
            }
        }
        Ok(())
    }

    async fn send(&mut self, text: &str) -> Result<(), End> {
        guarded(&self.signal, self.session.text(text.to_owned())).await
    }

    async fn on_message(&mut self, msg: Option<Result<Incoming, Broken>>) -> Result<(), End> {
        match msg {
            None => Err(End::Gone),
            Some(Err(Broken::TooBig)) => Err(End::Close(CloseCode::Size, "message too big")),
            Some(Err(Broken::Protocol(e))) => {
                tracing::info!(error = %e, "WebSocket protocol error");
                Err(End::Close(CloseCode::Protocol, "protocol error"))
            }
            Some(Ok(Incoming::Close)) => Err(End::Close(CloseCode::Normal, "")),
            Some(Ok(Incoming::Ping(bytes))) => {
                guarded(&self.signal, self.session.pong(&bytes)).await
            }
            Some(Ok(Incoming::Pong)) => Ok(()),
            Some(Ok(Incoming::Binary)) => {
                let frame = error_frame(
                    ErrorCode::ValidationFailed,
                    "Binary frames are not supported; send JSON text frames",
                    None,
                    None,
                );
                self.send(&frame).await
            }
            Some(Ok(Incoming::Text(text))) => {
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
            "resume" => error_frame(
                ErrorCode::ValidationFailed,
                "resume must be the socket's first frame; reconnect with ?since=<id> instead",
                None,
                None,
            ),
            _ => error_frame(
                ErrorCode::ValidationFailed,
                "Unknown event; expected send_message, ping or resume",
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
        let key = crate::extract::api_rate_key(&self.current.session.user_id);
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

    /// Sends the last words and closes the connection. Bounded in time: a full send buffer
    /// must not keep the task. Once the close frame is handed to the connection (the request
    /// stream ends with the response), the connection is shut down for writing, so the client
    /// closes at once instead of the server lingering (see `crate::connections`).
    async fn finish(self, end: End, mut messages: Messages) {
        let timeout = self.settings.close_timeout;
        let mut session = self.session;
        let (code, reason) = match end {
            End::Gone => return,
            End::Close(code, reason) => (code, reason.to_owned()),
            End::Shutdown => (CloseCode::Away, shutdown_reason(&self.settings)),
            End::SessionExpired => {
                let frame = json!({ "event": "session_expired", "data": {} }).to_string();
                if tokio::time::timeout(timeout, session.text(frame))
                    .await
                    .map_or(true, |r| r.is_err())
                {
                    return;
                }
                (CloseCode::Policy, "session expired".to_owned())
            }
        };
        let reason = actix_ws::CloseReason {
            code,
            description: (!reason.is_empty()).then_some(reason),
        };
        let closed = tokio::time::timeout(timeout, async {
            session.close(Some(reason)).await.ok()?;
            while messages.recv().await.is_some() {}
            Some(())
        })
        .await;
        if let (Ok(Some(())), Some(socket)) = (closed, &self.socket) {
            let _ = socket.shutdown(std::net::Shutdown::Write);
        }
    }
}
