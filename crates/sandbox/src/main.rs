//! `portal-sandbox`: the whole platform's downstreams (Auth Service, Tenant Service, State
//! Manager, Genesys login and API, Meta Graph) over HTTP with the demo data, for running the
//! service with every real HTTP adapter.
//!
//! Settings (environment): `SANDBOX_HOST` (default `127.0.0.1`), `SANDBOX_PORT` (default
//! `9090`), `SANDBOX_CLIENT_ID` (the Genesys client the login page accepts, default
//! `agent-portal-sandbox`), `SANDBOX_REDIRECT_URIS` (comma-separated redirect URIs the login
//! page accepts; default: the service's callback on 127.0.0.1 and [::1], any port),
//! `SANDBOX_FAULTS` (JSON array of faults, as `PUT /_admin/faults`
//! takes), `SANDBOX_REDIS_URL` (or else `REDIS_URL`; unset: no Redis): with it, the sandbox
//! consumes the service's outbound queue (Redis Stream `outbound.message`) and publishes each
//! message's `message_update` and `sent`/`delivered`/`read` on the tenant's Pub/Sub channels,
//! `LOG_LEVEL`. Log lines are coloured only on a terminal (and without `NO_COLOR`).

use anyhow::Context;
use portal_domain::ports::system::SystemClock;
use portal_domain::secret::SecretString;
use std::io::IsTerminal;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // rustls needs a process-wide crypto provider for `rediss://` (SANDBOX_REDIS_URL).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".to_owned());
    // Colours only on a terminal: piped into a file (`just dev` does), they would be noise.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();

    let host = std::env::var("SANDBOX_HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port: u16 = match std::env::var("SANDBOX_PORT") {
        Ok(p) => p.parse().context("SANDBOX_PORT must be a port number")?,
        Err(_) => 9090,
    };
    let mut options = portal_sandbox::Options::default();
    if let Ok(id) = std::env::var("SANDBOX_CLIENT_ID") {
        options.client_id = id;
    }
    if let Ok(uris) = std::env::var("SANDBOX_REDIRECT_URIS") {
        options.redirect_uris = uris
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Ok(text) = std::env::var("SANDBOX_FAULTS") {
        options.faults =
            portal_sandbox::serve::faults_from_json(&text).context("SANDBOX_FAULTS")?;
    }
    let listener = std::net::TcpListener::bind((host.as_str(), port))
        .with_context(|| format!("cannot bind {host}:{port}"))?;
    let platform = portal_sandbox::Platform::demo(Arc::new(SystemClock));
    let redis_url = std::env::var("SANDBOX_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .ok()
        .filter(|u| !u.trim().is_empty());
    // Kept alive for the life of the process.
    // On a Redis Cluster (`SANDBOX_REDIS_CLUSTER_NODES`), SANDBOX_REDIS_URL is the node holding
    // the stream and the events are published through the cluster.
    let cluster = std::env::var("SANDBOX_REDIS_CLUSTER_NODES")
        .ok()
        .filter(|n| !n.trim().is_empty());
    let consumer = match (redis_url, cluster) {
        (Some(url), Some(nodes)) => {
            let bus = portal_redis::RedisSettings::cluster(
                nodes.split(',').map(|n| n.trim().to_owned()).collect(),
            );
            Some(
                portal_sandbox::consume_outbound_with(SecretString::from(url), bus, &platform)
                    .await
                    .context("SANDBOX_REDIS_URL/SANDBOX_REDIS_CLUSTER_NODES")?,
            )
        }
        (Some(url), None) => Some(
            portal_sandbox::consume_outbound(SecretString::from(url), &platform)
                .await
                .context("SANDBOX_REDIS_URL/REDIS_URL")?,
        ),
        (None, _) => None,
    };
    let sandbox = portal_sandbox::serve(listener, platform, options)?;
    tracing::info!(
        address = %format!("{host}:{port}"),
        redis = consumer.is_some(),
        "portal-sandbox listening"
    );
    sandbox.server.await?;
    Ok(())
}
