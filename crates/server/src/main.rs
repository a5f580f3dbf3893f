//! `agent-portal`: reads the configuration, wires the adapters, serves until SIGTERM/SIGINT.
//!
//! Exit codes: 0 after a graceful shutdown (SIGTERM/SIGINT: stop accepting, close every
//! WebSocket with 1001, let in-flight requests finish within `SHUTDOWN_GRACE_SECONDS`);
//! 2 when the configuration is refused (every problem listed on stderr); 1 when start-up
//! fails otherwise (e.g. the port is taken).

use portal_server::telemetry::{get_subscriber_with_otlp, init_subscriber};
use portal_server::{Application, Settings};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            // Logging is not configured yet; stderr is the only place to say why.
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // The OTLP exporter's guard lives until after `run_until_stopped` returns below, so the
    // spans of the drained requests are exported before the process ends.
    let (subscriber, mut telemetry) = get_subscriber_with_otlp(
        &settings.log_level,
        std::io::stdout,
        settings.otel_exporter_otlp_endpoint.as_deref(),
    )?;
    init_subscriber(subscriber)?;
    let grace = settings.shutdown_grace_seconds;
    let app = Application::build(settings).await?;
    tracing::info!(
        port = app.port(),
        shutdown_grace_seconds = grace,
        "agent-portal listening"
    );
    app.run_until_stopped().await?;
    tracing::info!("agent-portal stopped (drained)");
    // Flush the buffered spans (blocking: off the runtime's async path, it is the last step).
    telemetry.shutdown();
    Ok(())
}
