//! `agent-portal`: reads the configuration, wires the adapters, serves until SIGTERM/SIGINT.

use portal_server::telemetry::{get_subscriber, init_subscriber};
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
    init_subscriber(get_subscriber(&settings.log_level, std::io::stdout))?;
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "agent-portal listening");
    app.run_until_stopped().await?;
    Ok(())
}
