//! Roles, tenant isolation, body limits, error format, headers, OpenAPI.

use crate::helpers::*;
use reqwest::StatusCode;

const GLOBEX: &str = "2f9a61d8-5b7c-4e21-9d03-6a8b4f0910be";
const ACME: &str = "7c0e4b52-1a3f-4d6e-8a90-3c1d5e00ac3e";

#[tokio::test]
async fn another_tenant_in_path_or_body_is_an_isolation_violation() {
    let app = spawn_app().await;
    app.sign_in("admin@acme.example").await;
    let csrf = app.csrf(&app.client).await;
    let socket = |tenant: &str| {
        app.client
            .get(app.url(&format!("/tenant/{tenant}/portal")))
            .header("Origin", FRONTEND)
            .send()
    };

    // In the path: the session's own tenant passes the check (and then needs an upgrade).
    let own = socket(ACME).await.unwrap();
    let body = assert_error(own, 400, "VALIDATION_FAILED").await;
    assert_eq!(body["details"]["fields"][0]["field"], "upgrade", "{body}");
    assert_error(
        socket(GLOBEX).await.unwrap(),
        403,
        "TENANT_ISOLATION_VIOLATION",
    )
    .await;

    // In the body: the session's own tenant reaches the wizard (which has nothing to finish).
    let complete = |tenant: &str| {
        app.client
            .post(app.url("/api/v1/onboarding/complete"))
            .header("X-CSRF-Token", &csrf)
            .json(&serde_json::json!({ "tenantId": tenant }))
            .send()
    };
    assert_error(complete(ACME).await.unwrap(), 400, "SESSION_EXPIRED").await;
    assert_error(
        complete(GLOBEX).await.unwrap(),
        403,
        "TENANT_ISOLATION_VIOLATION",
    )
    .await;
}

#[tokio::test]
async fn a_viewer_cannot_use_an_agent_capability() {
    let app = spawn_app().await;
    app.sign_in("viewer@acme.example").await;
    let csrf = app.csrf(&app.client).await;
    let res = app
        .client
        .post(app.url("/api/v1/widget/send"))
        .header("X-CSRF-Token", csrf)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn oversized_and_malformed_bodies_are_refused_in_the_error_format() {
    let app = spawn_app().await;
    app.sign_in("admin@acme.example").await;
    let csrf = app.csrf(&app.client).await;
    let send = |content_type: &'static str, body: String| {
        app.client
            .post(app.url("/api/v1/widget/send"))
            .header("X-CSRF-Token", &csrf)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };

    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(65 * 1024));
    let res = send("application/json", big).await.unwrap();
    assert_error(res, 413, "PAYLOAD_TOO_LARGE").await;

    let res = send("application/json", "{\"text\": ".into())
        .await
        .unwrap();
    assert_error(res, 400, "VALIDATION_FAILED").await;

    let res = send("text/plain", "{}".into()).await.unwrap();
    assert_error(res, 415, "UNSUPPORTED_MEDIA_TYPE").await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "NOT_FOUND").await;
    let res = app
        .client
        .delete(app.url("/api/v1/auth/me"))
        .send()
        .await
        .unwrap();
    assert_error(res, 405, "METHOD_NOT_ALLOWED").await;
}

#[tokio::test]
async fn request_ids_are_honoured_when_sane_and_security_headers_are_set() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/livez"))
        .header("X-Request-ID", "trace-abc-123")
        .send()
        .await
        .unwrap();
    let h = res.headers();
    assert_eq!(h["x-request-id"], "trace-abc-123");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert!(
        h["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    assert!(h.contains_key("content-security-policy"));

    let res = app
        .client
        .get(app.url("/livez"))
        .header("X-Request-ID", "x".repeat(200))
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn cors_allows_only_the_frontend_with_credentials() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/me"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
    };
    let res = preflight(FRONTEND).await.unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], FRONTEND);
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let res = preflight("https://evil.example").await.unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn health_and_probes_answer() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert!(body["uptime"].is_number() && body["timestamp"].is_string());
    assert!(body["checks"].is_object());
    for path in ["/livez", "/readyz"] {
        assert_eq!(
            app.client.get(app.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
}

#[tokio::test]
async fn openapi_lists_every_route_and_the_error_schema() {
    let app = spawn_app().await;
    let doc = app.openapi_document().await;
    for (path, method) in [
        ("/api/v1/auth/login", "get"),
        ("/api/v1/auth/callback", "get"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/auth/ws-ticket", "post"),
        ("/health", "get"),
        ("/livez", "get"),
        ("/readyz", "get"),
        ("/api/v1/openapi.json", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["session"]["in"],
        "cookie"
    );
}
