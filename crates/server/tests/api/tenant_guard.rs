//! The tenant guard (spec §5.3) on every route: a `tenantId` in the path, the query or the
//! JSON body that is not the session's tenant is refused with 403
//! `TENANT_ISOLATION_VIOLATION` and a security log line, before the route does anything.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every documented operation that needs a session: `(path template, method)`.
async fn session_operations(app: &TestApp) -> Vec<(String, String)> {
    let doc = app.openapi_document().await;
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("session").is_some()));
            if secured && !path.starts_with("/tenant/") {
                ops.push((path.clone(), method.clone()));
            }
        }
    }
    assert!(ops.len() >= 15, "{ops:?}");
    ops
}

/// The security line of the request `request_id`.
fn security_line(request_id: &str) -> Option<Value> {
    captured_logs()
        .lines()
        .filter(|l| l.contains(request_id) && l.contains("tenant_isolation_violation"))
        .map(|l| serde_json::from_str(l).unwrap())
        .next()
}

#[tokio::test]
async fn another_tenant_named_in_the_query_or_the_body_is_refused_on_every_route() {
    let app = spawn_unthrottled_app().await;
    let user = app.signed_in("admin@acme.example").await;
    let globex = globex().to_string();
    for (path, method) in session_operations(&app).await {
        let path = path
            .replace("{tenantId}", &acme().to_string())
            .replace(
                "{id}",
                &conversation(acme(), portal_domain::model::ConversationStatus::Active).to_string(),
            )
            .replace("{userId}", &uuid::Uuid::new_v4().to_string())
            .replace("{handle}", "any-handle");
        let request_id = format!("guard-{}", uuid::Uuid::new_v4());
        let request = match method.as_str() {
            "get" => user
                .client
                .get(app.url(&format!("{path}?tenantId={globex}"))),
            "post" => user
                .client
                .post(app.url(&path))
                .header("X-CSRF-Token", &user.csrf)
                .json(&json!({ "tenantId": globex })),
            "delete" => user
                .client
                .delete(app.url(&format!("{path}?tenantId={globex}")))
                .header("X-CSRF-Token", &user.csrf),
            other => panic!("{other} {path}"),
        };
        let res = request
            .header("X-Request-ID", &request_id)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "{method} {path} with Globex's tenantId"
        );
        assert_error(res, 403, "TENANT_ISOLATION_VIOLATION").await;
        let line = security_line(&request_id)
            .unwrap_or_else(|| panic!("no security line for {method} {path}"));
        assert_eq!(line["fields"]["requested_tenant"], globex.as_str());
        assert_eq!(line["level"], "WARN");
    }
    // Nothing happened: the session is alive (logout was refused too).
    assert_eq!(app.me(&user.client).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn dashboard_refresh_for_another_tenant_is_refused() {
    let app = spawn_app().await;
    let user = app.signed_in("admin@acme.example").await;
    let refresh = |body: Value| {
        user.client
            .post(app.url("/api/v1/dashboard/refresh"))
            .header("X-CSRF-Token", &user.csrf)
            .json(&body)
            .send()
    };
    let res = refresh(json!({ "tenantId": globex().to_string() }))
        .await
        .unwrap();
    assert_error(res, 403, "TENANT_ISOLATION_VIOLATION").await;
    // Its own tenant, or none, is the ordinary request.
    for body in [
        json!({ "tenantId": acme().to_string() }),
        json!({ "tenantId": acme().to_string().to_uppercase() }),
        json!({ "tenantId": null }),
        json!({}),
    ] {
        assert_eq!(refresh(body.clone()).await.unwrap().status(), 200, "{body}");
    }
    // A value that is not a UUID names no tenant: a 400, like any bad field.
    for bad in [json!("acme"), json!(""), json!(7), json!({"id": 1})] {
        let res = refresh(json!({ "tenantId": bad })).await.unwrap();
        let body = assert_error(res, 400, "VALIDATION_FAILED").await;
        assert_eq!(problem_fields(&body), ["tenantId"], "{bad}");
    }
}

#[tokio::test]
async fn another_tenant_in_a_path_is_refused() {
    let app = spawn_app().await;
    let user = app.signed_in("admin@acme.example").await;
    let res = user
        .client
        .get(app.url(&format!("/api/v1/onboarding/status/{}", globex())))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "TENANT_ISOLATION_VIOLATION").await;
    let res = app
        .try_connect(globex(), Some(&user.cookie), Some(FRONTEND), None)
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(res.0, 403);
    assert_eq!(res.1["code"], "TENANT_ISOLATION_VIOLATION");
}

#[tokio::test]
async fn a_session_without_a_tenant_may_name_none() {
    let app = spawn_app().await;
    let user = app.signed_in("new@newco.example").await;
    let res = user
        .client
        .get(app.url(&format!("/api/v1/onboarding/validate?tenantId={}", acme())))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "TENANT_ISOLATION_VIOLATION").await;
}
