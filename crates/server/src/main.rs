//! `agent-portal`: reads the configuration, wires the adapters, serves until SIGTERM/SIGINT.
//!
//! Exit codes: 0 after a graceful shutdown (SIGTERM/SIGINT: stop accepting, close every
//! WebSocket with 1001, let in-flight requests finish within `SHUTDOWN_GRACE_SECONDS`);
//! 2 when the configuration is refused (every problem listed on stderr); 1 when start-up
//! fails otherwise (e.g. the port is taken).

use portal_server::telemetry::{BatchedLines, get_subscriber, init_subscriber, otlp_exporter};
use portal_server::{Application, Settings};
use std::io::IsTerminal;

// mimalloc: per-thread free lists without glibc malloc's bin consolidation; glibc's malloc and
// free were ~10 % of a cached request (docs/performance.md). Built without its transparent
// huge pages (`no_thp` in Cargo.toml): with them an idle WebSocket held 27 KiB, not 19.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let mut telemetry = otlp_exporter(settings.otel_exporter_otlp_endpoint.as_deref())?;
    let terminal = std::io::stdout().is_terminal();
    let logging = settings.logging(terminal, std::env::var_os("NO_COLOR").is_some());
    init_subscriber(get_subscriber(
        &logging,
        BatchedLines::stdout(),
        telemetry.provider(),
    ))?;
    let grace = settings.shutdown_grace_seconds;
    let app = Application::build(settings.clone()).await?;
    tracing::info!(
        port = app.port(),
        shutdown_grace_seconds = grace,
        "agent-portal listening"
    );
    portal_server::first_steps::announce(&settings, app.port());
    app.run_until_stopped().await?;
    tracing::info!("agent-portal stopped (drained)");
    // Flush the buffered spans (blocking: off the runtime's async path, it is the last step).
    telemetry.shutdown();
    Ok(())
}
