//! The real-time wiring: the instance's WebSocket [`Hub`] fed by **one** event-bus
//! subscription (each event recorded in the tenant's history, then dispatched), the refresh
//! of the instance's entries in the socket registry, the widget-send use case, and the
//! going-away close of every socket at shutdown.
//!
//! The widget and the sockets use the State Manager port the server wired (the HTTP adapter
//! when `STATE_MANAGER_URL` is set, else the simulator; guarded either way) and the outbound
//! queue chosen by `outbound_queue`:
//! - State Manager simulated in process (embedded default, with or without Redis): the
//!   simulator's delivery, which records the send in the simulated State Manager and publishes
//!   `message_update` and `sent`/`delivered`/`read` on the event bus (decisions §3);
//! - State Manager over HTTP: the real outbound queue (with Redis, the Stream
//!   `outbound.message`). Whoever consumes it (the platform's Outbound service, or
//!   `portal-sandbox` given a Redis URL) publishes the status events on the tenant channels.

use crate::configuration::Settings;
use crate::startup::Overrides;
use crate::stores::Stores;
use portal_api::routes::ws::RealtimeSettings;
use portal_domain::ports::downstream::StateManager;
use portal_domain::ports::realtime::InstanceId;
use portal_domain::ports::stores::{EventBus, OutboundQueue};
use portal_domain::ports::system::{Clock, Random, RandomExt};
use portal_domain::realtime::{CloseReason, Hub, HubPorts};
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

/// The outbound queue widget sends go to: the simulator's delivery (publishing on the event
/// bus) while the State Manager is simulated in this process, the store's real queue (the
/// Redis Stream, or the in-memory queue) once it is a remote service (`STATE_MANAGER_URL`),
/// since only the platform behind it can deliver, record and announce the message.
fn outbound_queue(
    settings: &Settings,
    stores: &Stores,
    platform: &portal_sandbox::Platform,
) -> Arc<dyn OutboundQueue> {
    match settings.state_manager_url {
        Some(_) => stores.ports.outbound.clone(),
        None => platform.delivery(stores.ports.event_bus.clone()),
    }
}

impl Realtime {
    /// Builds the hub and the widget (over the wired State Manager and [`outbound_queue`],
    /// which `overrides` may wrap), and starts the task dispatching the bus subscription to
    /// the hub. A failed subscription is logged: sockets still open, but receive no events.
    #[allow(clippy::too_many_arguments)] // the widget's ports, passed through
    pub(crate) async fn wire(
        settings: &Settings,
        stores: &Stores,
        state_manager: Arc<dyn StateManager>,
        platform: &portal_sandbox::Platform,
        overrides: &Overrides,
        random: Arc<dyn Random>,
        clock: Arc<dyn Clock>,
        auditor: Arc<portal_domain::audit::Auditor>,
    ) -> Self {
        let bus = stores.ports.event_bus.clone();
        let hub = Hub::new(
            settings.hub(),
            HubPorts {
                history: stores.ports.history.clone(),
                presence: stores.ports.presence.clone(),
                instance: InstanceId::from_random(random.bytes()),
            },
        );
        tokio::spawn(hub.clone().keep_presence());
        match bus.subscribe().await {
            Ok(events) => {
                tokio::spawn(hub.clone().run(events));
            }
            Err(e) => {
                tracing::error!(error = %e, "no event subscription: WebSockets receive no events")
            }
        }
        let queue = outbound_queue(settings, stores, platform);
        let queue = match &overrides.wrap_outbound {
            Some(wrap) => wrap(queue),
            None => queue,
        };
        let widget = Arc::new(Widget::new(
            state_manager,
            queue,
            stores.ports.idempotency.clone(),
            random,
            clock,
            auditor,
        ));
        let settings = RealtimeSettings {
            ping_interval: Duration::from_millis(settings.ws_ping_interval_ms),
            idle_timeout: Duration::from_millis(settings.ws_idle_timeout_ms),
            session_check_interval: Duration::from_millis(settings.ws_session_check_ms),
            reconnect_delay: (
                Duration::from_millis(settings.ws_reconnect_delay_min_ms),
                Duration::from_millis(settings.ws_reconnect_delay_max_ms),
            ),
            ..RealtimeSettings::default()
        };
        Self {
            hub,
            widget,
            settings,
            bus,
        }
    }

    /// Once SIGINT or SIGTERM arrives: closes every socket with 1001 (open sockets would
    /// otherwise hold the drain until its deadline), then stops `server` gracefully: no new
    /// connections, in-flight requests finish within the shutdown grace period.
    /// Resolves once the stop has begun.
    pub(crate) fn stop_on_shutdown_signal(
        &self,
        server: actix_web::dev::ServerHandle,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let hub = self.hub.clone();
        let (stopping, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown: closing WebSockets, draining requests");
            hub.close_all(CloseReason::Shutdown);
            let _ = stopping.send(());
            server.stop(true).await;
        });
        stopped
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
