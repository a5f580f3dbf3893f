//! The served OpenAPI document is an exact contract: it is the committed `docs/openapi.json`,
//! every operation has a unique ID, every answer a description and a schema (the error body on
//! every 4xx/5xx), typed 2xx bodies, "session AND CSRF header" on state-changing routes, and
//! bounds the server keeps. (The test command also runs openapi-spec-validator, schemathesis
//! and a TypeScript client generated from it: `scripts/contract.sh`.)

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;

/// `(path, method, operation)` of every operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((path.clone(), method.clone(), op.clone()));
        }
    }
    ops
}

/// A `$ref`'s schema, or the schema itself.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let app = spawn_app().await;
    let served = app.openapi_document().await;
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(served, committed);
    assert!(served["openapi"].as_str().unwrap().starts_with("3.1"));
}

#[tokio::test]
async fn every_operation_and_answer_is_described_and_typed() {
    let app = spawn_app().await;
    let doc = app.openapi_document().await;
    let mut ids = HashSet::new();
    for (path, method, op) in operations(&doc) {
        let label = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: no operationId"));
        assert!(
            ids.insert(id.to_owned()),
            "{label}: operationId {id} used twice"
        );
        let responses = op["responses"].as_object().unwrap();
        for (status, response) in responses {
            let what = format!("{label} {status}");
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty()),
                "{what}: no description"
            );
            let code: u16 = status
                .parse()
                .unwrap_or_else(|_| panic!("{what}: not a status"));
            if code >= 400 {
                let schema = &response["content"]["application/json"]["schema"];
                let name = schema["$ref"].as_str().unwrap_or_default();
                let own_body = ["/health", "/readyz"].contains(&path.as_str()) && code == 503;
                assert!(
                    name.ends_with("/ErrorBody") || own_body,
                    "{what}: not the error body: {response}"
                );
            }
            if (200..300).contains(&code) {
                for (media, content) in response["content"].as_object().into_iter().flatten() {
                    let schema = resolve(&doc, &content["schema"]);
                    let bare_object = schema == &json!({"type": "object"});
                    assert!(
                        !bare_object || path == "/api/v1/openapi.json",
                        "{what} {media}: an untyped object"
                    );
                    if media == "application/json" && path != "/api/v1/openapi.json" {
                        assert!(
                            schema["properties"].is_object() || schema["allOf"].is_array(),
                            "{what}: no properties: {schema}"
                        );
                    }
                }
            }
            if code == 429 {
                for header in [
                    "Retry-After",
                    "RateLimit-Limit",
                    "RateLimit-Remaining",
                    "RateLimit-Reset",
                ] {
                    assert!(response["headers"][header].is_object(), "{what}: {header}");
                }
            }
        }
    }
}

#[tokio::test]
async fn every_answer_the_edge_can_give_is_documented() {
    let app = spawn_app().await;
    let doc = app.openapi_document().await;
    for (path, method, op) in operations(&doc) {
        let documented = |status: &str| op["responses"].get(status).is_some();
        let secured = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("session").is_some()));
        let mut expected = vec!["414", "431", "500"];
        if secured {
            expected.extend(["401", "429", "503"]);
        }
        if ["post", "put", "patch", "delete"].contains(&method.as_str()) {
            expected.extend(["400", "403", "413", "415"]);
        }
        for status in expected {
            assert!(documented(status), "{method} {path}: no {status}");
        }
        // Every identifier parameter is a canonical UUID.
        for param in op["parameters"].as_array().into_iter().flatten() {
            if ["id", "tenantId"].contains(&param["name"].as_str().unwrap()) {
                assert_eq!(param["schema"]["format"], "uuid", "{method} {path} {param}");
                assert!(
                    param["schema"]["pattern"].is_string(),
                    "{method} {path} {param}"
                );
            }
        }
    }
    let upgrade = &doc["paths"]["/tenant/{tenantId}/portal"]["get"]["responses"];
    for status in ["101", "400", "401", "403"] {
        assert!(
            upgrade[status].is_object(),
            "the WebSocket upgrade's {status}"
        );
    }
}

#[tokio::test]
async fn state_changing_routes_require_the_session_and_the_csrf_header_together() {
    let app = spawn_app().await;
    let doc = app.openapi_document().await;
    let both = json!([{ "session": [], "csrf": [] }]);
    for (path, method, op) in operations(&doc) {
        match method.as_str() {
            "post" | "put" | "patch" | "delete" => {
                assert_eq!(op["security"], both, "{method} {path}")
            }
            "get" if op["security"].is_array() => {
                for requirement in op["security"].as_array().unwrap() {
                    assert!(
                        requirement.get("csrf").is_none(),
                        "GET {path}: {requirement}"
                    );
                }
            }
            _ => {}
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["csrf"]["in"], "header");
    assert_eq!(
        doc["components"]["securitySchemes"]["csrf"]["name"],
        "X-CSRF-Token"
    );
}

#[tokio::test]
async fn request_fields_are_required_and_bounded_as_the_server_enforces_them() {
    let app = spawn_app().await;
    let doc = app.openapi_document().await;
    let schemas = &doc["components"]["schemas"];
    for (schema, required) in [
        (
            "Step1Request",
            vec!["companyName", "region", "contactEmail"],
        ),
        ("Step2Request", vec!["clientId", "clientSecret", "region"]),
        ("Step3Request", vec!["phoneNumberId", "systemUserToken"]),
        ("SendBody", vec!["conversationId", "text"]),
    ] {
        let s = &schemas[schema];
        let mut got: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        got.sort();
        let mut want = required.clone();
        want.sort();
        assert_eq!(got, want, "{schema}");
        for field in required {
            assert_eq!(
                s["properties"][field]["type"], "string",
                "{schema}.{field}: not nullable"
            );
        }
        if let Some(tenant) = s["properties"].get("tenantId") {
            assert_eq!(tenant["format"], "uuid", "{schema}.tenantId");
        }
    }
    assert_eq!(
        schemas["SendBody"]["properties"]["conversationId"]["format"],
        "uuid"
    );
    assert_eq!(
        schemas["ErrorBody"]["required"],
        json!(["error", "code", "correlationId"])
    );

    // `page` and `limit`: the documented bounds are the server's.
    let user = app.signed_in("admin@acme.example").await;
    let params = doc["paths"]["/api/v1/history/threads"]["get"]["parameters"]
        .as_array()
        .unwrap();
    for name in ["page", "limit"] {
        let schema = &params.iter().find(|p| p["name"] == name).unwrap()["schema"];
        let (min, max) = (
            schema["minimum"].as_u64().unwrap(),
            schema["maximum"].as_u64().unwrap(),
        );
        assert!(max <= i32::MAX as u64, "{name}: {schema}");
        for (value, ok) in [(min, true), (max, true), (min - 1, false), (max + 1, false)] {
            let res = user
                .client
                .get(app.url(&format!("/api/v1/history/threads?{name}={value}")))
                .send()
                .await
                .unwrap();
            if ok {
                assert_eq!(res.status(), StatusCode::OK, "{name}={value}");
            } else {
                let body = assert_error(res, 400, "VALIDATION_FAILED").await;
                assert_eq!(problem_fields(&body), [name], "{name}={value}");
            }
        }
    }
}
