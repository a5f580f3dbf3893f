//! The State Manager adapter against a wiremock server.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic

use portal_domain::DownstreamFailure;
use portal_domain::model::{
    ConversationQuery, ConversationStatus, DateRange, MessageStatus, Period, RawMetrics,
};
use portal_domain::ports::downstream::{StateManager, StateManagerError};
use portal_outbound::context::{self, RequestContext};
use portal_outbound::testing;
use portal_state_manager::{HttpStateManager, SERVICE, Timeouts};
use serde_json::json;
use std::time::Duration;
use time::macros::date;
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT: &str = "6f1c2b8e-8f4e-4c53-9a57-4f3f0f0b8a11";
const CONV: &str = "0e8d4a55-3b7c-4a1e-9f0d-2c6b5a4e3d21";
const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn setup() -> (MockServer, HttpStateManager) {
    let server = MockServer::start().await;
    let ds = testing::downstream(SERVICE, &server.uri(), testing::breaker_after(3));
    let svc = HttpStateManager::new(ds).with_timeouts(Timeouts {
        conversations: Duration::from_millis(200),
        messages: Duration::from_millis(200),
        metrics: Duration::from_millis(200),
    });
    (server, svc)
}

fn summary() -> serde_json::Value {
    json!({
        "wa_id": "15550100", "conversation_id": CONV, "last_activity": "2026-02-12T08:25:00Z",
        "status": "active", "message_count": 15
    })
}

#[tokio::test]
async fn list_sends_the_query_and_reads_top_level_pagination() {
    let (server, svc) = setup().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/conversations"))
        .and(query_param("tenantId", TENANT))
        .and(query_param("page", "2"))
        .and(query_param("limit", "20"))
        .and(query_param("status", "active"))
        .and(header("traceparent", TP))
        .and(header("x-request-id", "req-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [summary()], "page": 2, "limit": 20, "total": 45
        })))
        .expect(1)
        .mount(&server)
        .await;
    let query = ConversationQuery {
        page: 2,
        limit: 20,
        status: Some(ConversationStatus::Active),
    };

    let ctx = RequestContext::new("req-1").with_traceparent(Some(TP));
    let page = context::scope(ctx, svc.conversations(TENANT.parse().unwrap(), query))
        .await
        .unwrap();

    assert_eq!((page.page, page.limit, page.total), (2, 20, 45));
    assert_eq!(page.data[0].message_count, 15);
    assert_eq!(page.data[0].conversation_id.to_string(), CONV);
}

#[tokio::test]
async fn list_reads_nested_pagination_without_status_filter() {
    let (server, svc) = setup().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/conversations"))
        .and(query_param_is_missing("status"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [summary(), summary()],
            "pagination": {"page": 1, "limit": 2, "total": 3, "totalPages": 2}
        })))
        .mount(&server)
        .await;
    let query = ConversationQuery {
        page: 1,
        limit: 2,
        status: None,
    };

    let page = svc
        .conversations(TENANT.parse().unwrap(), query)
        .await
        .unwrap();

    assert_eq!((page.page, page.limit, page.total), (1, 2, 3));
    assert!(page.has_next());
}

#[tokio::test]
async fn conversation_accepts_camel_case_tenant_id_and_404_is_not_found() {
    let (server, svc) = setup().await;
    Mock::given(path(format!("/api/v1/conversations/{CONV}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": CONV, "tenantId": TENANT, "waId": "15550100", "status": "closed",
            "createdAt": "2026-02-12T08:00:00Z"
        })))
        .mount(&server)
        .await;

    let c = svc.conversation(CONV.parse().unwrap()).await.unwrap();
    assert_eq!(c.tenant_id.to_string(), TENANT);
    assert_eq!(c.status, ConversationStatus::Closed);

    let other = "11111111-2222-4333-8444-555555555555";
    Mock::given(path(format!("/api/v1/conversations/{other}")))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    assert_eq!(
        svc.conversation(other.parse().unwrap()).await.unwrap_err(),
        StateManagerError::NotFound
    );
}

#[tokio::test]
async fn messages_in_every_accepted_shape() {
    let msg = json!({
        "message_id": "m1", "direction": "inbound", "text": "Hello", "status": "read",
        "timestamp": "2026-02-12T08:20:00Z"
    });
    for body in [
        json!([msg]),
        json!({"data": [msg]}),
        json!({"messages": [msg]}),
    ] {
        let (server, svc) = setup().await;
        Mock::given(path(format!("/api/v1/conversations/{CONV}/messages")))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
        let list = svc.messages(CONV.parse().unwrap()).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, MessageStatus::Read);
        assert_eq!(list[0].text.as_deref(), Some("Hello"));
    }
}

#[tokio::test]
async fn metrics_by_period_and_by_range() {
    let (server, svc) = setup().await;
    let body = json!({
        "totalMessages": 1000, "sent": 950, "delivered": 920, "read": 850, "failed": 30,
        "activeConversations": 45, "distinctWaIds": 38
    });
    Mock::given(path(format!("/api/v1/metrics/{TENANT}")))
        .and(query_param("period", "week"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(format!("/api/v1/metrics/{TENANT}")))
        .and(query_param("startDate", "2026-02-01"))
        .and(query_param("endDate", "2026-02-09"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": body})))
        .expect(1)
        .mount(&server)
        .await;
    let expected = RawMetrics {
        total_messages: 1000,
        sent: 950,
        delivered: 920,
        read: 850,
        failed: 30,
        active_conversations: 45,
        distinct_wa_ids: 38,
    };

    let m = svc
        .metrics(TENANT.parse().unwrap(), Period::Week)
        .await
        .unwrap();
    assert_eq!(m, expected);
    let range = DateRange::new(
        date!(2026 - 02 - 01),
        date!(2026 - 02 - 09),
        date!(2026 - 02 - 12),
    )
    .unwrap();
    let m = svc
        .metrics_range(TENANT.parse().unwrap(), range)
        .await
        .unwrap();
    assert_eq!(m, expected);
}

#[tokio::test]
async fn metrics_get_is_retried_after_503() {
    let (server, svc) = setup().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"totalMessages": 3})))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    let m = svc
        .metrics(TENANT.parse().unwrap(), Period::Today)
        .await
        .unwrap();
    assert_eq!(m.total_messages, 3);
}

#[tokio::test]
async fn failures_map_to_downstream_failures() {
    let cases: [(ResponseTemplate, DownstreamFailure); 5] = [
        (
            ResponseTemplate::new(500),
            DownstreamFailure::Unavailable { status: Some(500) },
        ),
        (
            ResponseTemplate::new(401),
            DownstreamFailure::Protocol("unauthorized".into()),
        ),
        (
            ResponseTemplate::new(200).set_delay(Duration::from_millis(500)),
            DownstreamFailure::Timeout,
        ),
        (
            ResponseTemplate::new(200).set_body_string("<html>"),
            DownstreamFailure::Protocol(String::new()),
        ),
        (
            ResponseTemplate::new(200).set_body_string(format!("[{}]", " ".repeat(2_000_000))),
            DownstreamFailure::Protocol("response body exceeds 1048576 bytes".into()),
        ),
    ];
    for (template, expected) in cases {
        let (server, svc) = setup().await;
        Mock::given(method("GET"))
            .respond_with(template)
            .mount(&server)
            .await;
        let err = svc.messages(CONV.parse().unwrap()).await.unwrap_err();
        match (&err, &expected) {
            // Malformed: the text names the position, only the kind is asserted.
            (
                StateManagerError::Failure(DownstreamFailure::Protocol(got)),
                DownstreamFailure::Protocol(want),
            ) if want.is_empty() => assert!(got.contains("malformed"), "{got}"),
            _ => assert_eq!(err, StateManagerError::Failure(expected)),
        }
    }
}

#[tokio::test]
async fn breaker_opens_and_calls_stop() {
    let (server, svc) = setup().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&server)
        .await;
    for _ in 0..3 {
        svc.metrics(TENANT.parse().unwrap(), Period::Today)
            .await
            .unwrap_err();
    }
    assert_eq!(
        svc.metrics(TENANT.parse().unwrap(), Period::Today)
            .await
            .unwrap_err(),
        StateManagerError::Failure(DownstreamFailure::CircuitOpen)
    );
}
