//! Issue 5's wiring: the instance's WebSocket [`Hub`] fed by **one** event-bus subscription,
//! the widget-send use case, and the going-away close of every socket at shutdown.
//!
//! Outbound queue: while the downstreams are simulated (decisions §3), widget sends go to the
//! sandbox's delivery simulator, which publishes `message_update` and `sent`/`delivered`/`read`
//! on the event bus, so a browser on the embedded default sees its message travel.

use crate::configuration::Settings;
use portal_api::routes::ws::RealtimeSettings;
use portal_domain::ports::stores::EventBus;
use portal_domain::ports::system::{Clock, Random};
use portal_domain::realtime::{CloseReason, Hub};
use portal_domain::widget::Widget;
use std::sync::Arc;
use std::time::Duration;

/// The real-time parts of one instance.
#[derive(Clone)]
pub struct Realtime {
    /// The instance's sockets by tenant.
    pub hub: Arc<Hub>,
    /// The widget-send use case (REST and socket).
    pub widget: Arc<Widget>,
    /// Socket liveness and limits.
    pub settings: RealtimeSettings,
    /// The event bus the hub listens to (tests publish on it).
    pub bus: Arc<dyn EventBus>,
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime")
            .field("hub", &self.hub)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Realtime {
    /// Builds the hub and the widget, and starts the task dispatching the bus subscription
    /// to the hub. A failed subscription is logged: sockets still open, but receive no events.
    pub async fn wire(
        settings: &Settings,
        bus: Arc<dyn EventBus>,
        platform: &portal_sandbox::Platform,
        idempotency: Arc<dyn portal_domain::ports::stores::IdempotencyStore>,
        random: Arc<dyn Random>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let hub = Hub::new(settings.ws_queue_capacity);
        match bus.subscribe().await {
            Ok(events) => {
                tokio::spawn(hub.clone().run(events));
            }
            Err(e) => {
                tracing::error!(error = %e, "no event subscription: WebSockets receive no events")
            }
        }
        let widget = Arc::new(Widget::new(
            platform.state_manager(),
            platform.delivery(bus.clone()),
            idempotency,
            random,
            clock,
        ));
        let settings = RealtimeSettings {
            ping_interval: Duration::from_millis(settings.ws_ping_interval_ms),
            idle_timeout: Duration::from_millis(settings.ws_idle_timeout_ms),
            session_check_interval: Duration::from_millis(settings.ws_session_check_ms),
            ..RealtimeSettings::default()
        };
        Self {
            hub,
            widget,
            settings,
            bus,
        }
    }

    /// Closes every socket with 1001 once SIGINT or SIGTERM arrives (actix drains the HTTP
    /// connections on the same signals; open sockets would otherwise hold it until its timeout).
    pub fn close_on_shutdown_signal(&self) {
        let hub = self.hub.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown: closing WebSockets");
            hub.close_all(CloseReason::Shutdown);
        });
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = ctrl_c() => {}
                }
            }
            Err(_) => ctrl_c().await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c().await;
}

/// Ctrl-C; never resolves when the handler cannot be installed (that is no shutdown).
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
