//! Traces over OTLP.

use super::*;

/// Keeps the OTLP exporter alive; dropping it (or [`TelemetryGuard::shutdown`]) flushes the
/// spans still buffered. The binary holds it until the server has stopped.
#[derive(Debug, Default)]
#[must_use = "dropping the guard shuts the span exporter down"]
pub struct TelemetryGuard {
    /// `None` without OTLP.
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// The tracer provider, for [`get_subscriber`].
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// Flushes and stops the exporter (idempotent).
    pub fn shutdown(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            // The subscriber may be gone already: stderr is the one sure place.
            eprintln!("OpenTelemetry shutdown: {e}");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The OTLP/HTTP traces URL for a collector base URL (`http://collector:4318` →
/// `http://collector:4318/v1/traces`); a URL already ending in `/v1/traces` is kept.
pub(crate) fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The resource spans are exported with: the SDK's detectors (`OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`, the SDK's own attributes), with `service.name` =
/// [`SERVICE_NAME`] when neither variable names one (the SDK would say `unknown_service`).
pub(super) fn resource() -> opentelemetry_sdk::Resource {
    use opentelemetry_sdk::resource::{EnvResourceDetector, ResourceDetector};
    let key = opentelemetry::Key::from_static_str("service.name");
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|n| !n.trim().is_empty())
        || EnvResourceDetector::new().detect().get(&key).is_some();
    let builder = opentelemetry_sdk::Resource::builder();
    if named {
        builder.build()
    } else {
        builder.with_service_name(SERVICE_NAME).build()
    }
}

/// The OTLP exporter when `endpoint` (`OTEL_EXPORTER_OTLP_ENDPOINT`) or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set: batches of spans over OTLP/HTTP from a
/// background thread with the blocking client. An empty guard otherwise.
pub fn otlp_exporter(endpoint: Option<&str>) -> anyhow::Result<TelemetryGuard> {
    let endpoint = endpoint.map(str::trim).filter(|e| !e.is_empty());
    // The signal-specific variable wins, as the OpenTelemetry specification says; the
    // exporter reads it itself when no endpoint is given here.
    let traces_endpoint =
        std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_ok_and(|e| !e.trim().is_empty());
    if endpoint.is_none() && !traces_endpoint {
        return Ok(TelemetryGuard::default());
    }
    use opentelemetry_otlp::WithExportConfig;
    // The exporter's reqwest client needs rustls's provider (reqwest panics without).
    portal_outbound::install_crypto_provider();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let (Some(endpoint), false) = (endpoint, traces_endpoint) {
        exporter = exporter.with_endpoint(traces_url(endpoint));
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter.build()?)
        .with_resource(resource())
        .build();
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}
