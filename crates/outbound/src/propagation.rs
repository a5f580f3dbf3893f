//! The correlation headers of an outgoing request.
//!
//! Precedence for the trace context: the current tracing span's OpenTelemetry context (when an
//! OTel layer is installed and the span is sampled or remote-parented), then the incoming
//! `traceparent` of the [`RequestContext`](crate::context::RequestContext), then a fresh root
//! trace so the downstream can still correlate its logs with ours.

use crate::context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rand::Rng;
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The headers computed once per logical call (the same on every retry).
#[derive(Debug, Clone)]
pub(crate) struct Correlation {
    pub(crate) request_id: String,
    pub(crate) traceparent: String,
    pub(crate) tracestate: Option<String>,
}

pub(crate) fn outgoing() -> Correlation {
    let ctx = context::current();
    let request_id = ctx
        .as_ref()
        .map(|c| c.request_id().to_owned())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());

    let otel = tracing::Span::current().context();
    if otel.span().span_context().is_valid() {
        let mut carrier: HashMap<String, String> = HashMap::new();
        TraceContextPropagator::new().inject_context(&otel, &mut carrier);
        if let Some(traceparent) = carrier
            .remove("traceparent")
            .filter(|t| context::is_valid_traceparent(t))
        {
            return Correlation {
                request_id,
                traceparent,
                tracestate: carrier.remove("tracestate").filter(|s| !s.is_empty()),
            };
        }
    }

    if let Some(c) = &ctx
        && let Some(traceparent) = c.traceparent()
    {
        return Correlation {
            request_id,
            traceparent: traceparent.to_owned(),
            tracestate: c.tracestate().map(str::to_owned),
        };
    }

    Correlation {
        request_id,
        traceparent: new_root_traceparent(),
        tracestate: None,
    }
}

fn new_root_traceparent() -> String {
    let mut rng = rand::rng();
    let trace_id: u128 = rng.random_range(1..=u128::MAX);
    let span_id: u64 = rng.random_range(1..=u64::MAX);
    format!("00-{trace_id:032x}-{span_id:016x}-01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_root_is_well_formed_and_unique() {
        let a = new_root_traceparent();
        assert!(context::is_valid_traceparent(&a), "{a}");
        assert_ne!(a, new_root_traceparent());
    }
}
