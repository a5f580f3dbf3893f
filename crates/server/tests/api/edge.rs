//! The HTTP edge's answers to odd requests, on every route the OpenAPI document lists: other
//! methods (405 with `Allow`, `OPTIONS`), `HEAD`, bodies that are not JSON, not an object,
//! malformed or too large, request heads over the limits, what the HTTP parser answers itself,
//! and the pages for people (`/`, `/docs`).

use crate::helpers::*;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ANY_UUID: &str = "0b0f6c5e-9d5a-4a59-9d0e-6f3c2c1f4a10";

/// Every documented operation: `(path template, method)`.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.push((path.clone(), method.to_uppercase()));
        }
    }
    ops
}

/// A concrete path for a template (`{tenantId}` → Acme's, any other parameter → a UUID).
fn concrete(path: &str) -> String {
    path.replace("{tenantId}", &acme().to_string())
        .replace("{id}", ANY_UUID)
}

fn allow(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get(header::ALLOW)
        .unwrap_or_else(|| panic!("no Allow on {} {}", res.status(), res.url()))
        .to_str()
        .unwrap()
        .split(',')
        .map(|m| m.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn every_route_answers_another_method_with_405_and_allow_and_options_with_204() {
    let app = spawn_app().await;
    let doc = app.openapi_document().await;
    let ops = operations(&doc);
    let mut paths: Vec<&String> = ops.iter().map(|(p, _)| p).collect();
    paths.dedup();
    assert!(paths.len() >= 20, "{paths:?}");
    for path in paths {
        let documented: Vec<&str> = ops
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, m)| m.as_str())
            .collect();
        let mut expected: Vec<String> = documented.iter().map(|m| m.to_string()).collect();
        if documented.contains(&"GET") {
            expected.push("HEAD".into());
        }
        expected.push("OPTIONS".into());
        let url = app.url(&concrete(path));
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if documented.contains(&method) {
                continue;
            }
            let res = app
                .client
                .request(Method::from_bytes(method.as_bytes()).unwrap(), &url)
                .send()
                .await
                .unwrap();
            let mut got = allow(&res);
            got.sort();
            let mut want = expected.clone();
            want.sort();
            assert_eq!(got, want, "{method} {path}");
            assert_error(res, 405, "METHOD_NOT_ALLOWED").await;
        }
        let res = app
            .client
            .request(Method::OPTIONS, &url)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "OPTIONS {path}");
        let mut got = allow(&res);
        got.sort();
        let mut want = expected;
        want.sort();
        assert_eq!(got, want, "OPTIONS {path}");
    }
    let res = app
        .client
        .delete(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get(header::ALLOW).is_none());
    assert_error(res, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn head_is_answered_on_get_routes_without_a_body() {
    let app = spawn_app().await;
    let user = app.signed_in("admin@acme.example").await;
    for path in [
        "/livez",
        "/health",
        "/api/v1/openapi.json",
        "/",
        "/api/v1/auth/me",
        "/api/v1/dashboard/stats",
    ] {
        let get = user.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(get.status(), StatusCode::OK, "GET {path}");
        let head = user.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        assert_eq!(
            head.headers().get(header::CONTENT_TYPE),
            get.headers().get(header::CONTENT_TYPE),
            "{path}"
        );
        assert!(head.headers().contains_key("x-request-id"), "{path}");
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path}: no body"
        );
    }
    // Refusals too: the status and headers of GET, no body.
    let res = app
        .client
        .head(app.url("/api/v1/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// Every documented POST route, signed in as Acme's admin with the CSRF token.
async fn post_routes(app: &TestApp) -> (User, Vec<String>) {
    let user = app.signed_in("admin@acme.example").await;
    let doc = app.openapi_document().await;
    let posts: Vec<String> = operations(&doc)
        .into_iter()
        .filter(|(_, m)| m == "POST")
        .map(|(p, _)| concrete(&p))
        .collect();
    assert!(posts.len() >= 9, "{posts:?}");
    (user, posts)
}

fn post(app: &TestApp, user: &User, path: &str) -> reqwest::RequestBuilder {
    user.client
        .post(app.url(path))
        .header("X-CSRF-Token", &user.csrf)
}

#[tokio::test]
async fn every_post_route_refuses_a_body_that_is_not_json_with_415() {
    let app = spawn_unthrottled_app().await;
    let (user, posts) = post_routes(&app).await;
    for path in &posts {
        for (content_type, body) in [
            ("text/plain", "x".repeat(100 * 1024)),
            ("text/plain", "{}".to_owned()),
            ("application/x-www-form-urlencoded", "tenantId=x".to_owned()),
            ("application/json; charset=latin1", "{}".to_owned()),
        ] {
            let res = post(&app, &user, path)
                .header(header::CONTENT_TYPE, content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_error(res, 415, "UNSUPPORTED_MEDIA_TYPE").await;
        }
        let res = post(&app, &user, path).body("{}").send().await.unwrap();
        assert_error(res, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    }
    // None of them ran: the session is alive and the wizard never completed.
    assert_eq!(app.me(&user.client).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_post_route_refuses_malformed_non_object_and_oversized_json() {
    let app = spawn_unthrottled_app().await;
    let (user, posts) = post_routes(&app).await;
    let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(70 * 1024));
    for path in &posts {
        for body in [
            "false",
            "[]",
            "\"{}\"",
            "null",
            "1",
            "{",
            "{\"a\":1}x",
            "\u{feff}{}",
        ] {
            let res = post(&app, &user, path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let err = assert_error(res, 400, "VALIDATION_FAILED").await;
            assert_eq!(problem_fields(&err), ["body"], "{path} {body}");
        }
        let res = post(&app, &user, path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_error(res, 413, "PAYLOAD_TOO_LARGE").await;
    }
    // POST /onboarding/complete used to read all of these as `{}` and complete.
    assert_eq!(app.me(&user.client).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_oversized_body_is_refused_even_without_a_content_length() {
    let app = spawn_app().await;
    let user = app.signed_in("admin@acme.example").await;
    let mut request = format!(
        "POST /api/v1/onboarding/complete HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Cookie: {}\r\nX-CSRF-Token: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        user.cookie, user.csrf
    )
    .into_bytes();
    for _ in 0..80 {
        request.extend_from_slice(b"400\r\n");
        request.extend_from_slice(&[b' '; 1024]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(&app, &request).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("\"code\":\"PAYLOAD_TOO_LARGE\""),
        "{answer}"
    );
    assert!(answer.contains("\"correlationId\""), "{answer}");
}

#[tokio::test]
async fn an_empty_body_is_no_body() {
    let app = spawn_app().await;
    let user = app.signed_in("admin@acme.example").await;
    // A route whose body is optional runs; one whose body is required says so.
    let res = post(&app, &user, "/api/v1/dashboard/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = post(&app, &user, "/api/v1/widget/send")
        .header(header::CONTENT_TYPE, "application/json")
        .send()
        .await
        .unwrap();
    let err = assert_error(res, 400, "VALIDATION_FAILED").await;
    assert_eq!(problem_fields(&err), ["body"]);
}

#[tokio::test]
async fn request_heads_over_the_limits_are_answered_in_the_error_format() {
    let app = spawn_app().await;
    let mut many = reqwest::header::HeaderMap::new();
    for i in 0..70 {
        many.insert(
            reqwest::header::HeaderName::from_bytes(format!("x-extra-{i}").as_bytes()).unwrap(),
            "1".parse().unwrap(),
        );
    }
    let res = app
        .client
        .get(app.url("/health"))
        .headers(many)
        .send()
        .await
        .unwrap();
    assert_error(res, 431, "HEADERS_TOO_LARGE").await;

    let res = app
        .client
        .get(app.url("/health"))
        .header("x-big", "a".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_error(res, 431, "HEADERS_TOO_LARGE").await;

    let res = app
        .client
        .get(app.url(&format!("/health?x={}", "a".repeat(9 * 1024))))
        .send()
        .await
        .unwrap();
    assert_error(res, 414, "URI_TOO_LONG").await;
}

/// Sends raw bytes on a new connection and reads until the server closes it.
async fn raw(app: &TestApp, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    // The server may answer (and stop reading) before the whole request is written.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    // A reset after the answer (unread request bytes) still leaves the answer read.
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes");
    String::from_utf8_lossy(&answer).into_owned()
}

/// What actix-http answers itself, before any of the service's code runs (docs/operations.md
/// lists these): bare statuses, no body.
#[tokio::test]
async fn what_the_http_parser_answers_itself() {
    let app = spawn_app_with(|s| portal_server::Settings {
        http_client_request_timeout_ms: 1_000,
        ..s
    })
    .await;
    let answer = raw(&app, b"NOT A REQUEST LINE\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    for request in [
        &b"GET /health HTTP/1.1\r\n\r\n"[..],
        b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        b"POST /api/v1/auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /api/v1/auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /api/v1/auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let answer = raw(&app, request).await;
        assert!(
            answer.starts_with("HTTP/1.1 400") && answer.contains("content-length: 0"),
            "{}: {answer}",
            String::from_utf8_lossy(request)
        );
    }
    // A client that does not finish its request head in time.
    let answer = raw(&app, b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // More header fields than the parser holds (96).
    let mut request = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..100 {
        request.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let answer = raw(&app, &request).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn the_root_points_to_the_docs_the_document_health_and_metrics() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["links"],
        json!({"docs": "/docs/", "openapi": "/api/v1/openapi.json", "health": "/health", "metrics": "/metrics"})
    );
    let res = app
        .client
        .get(app.url("/"))
        .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = res.text().await.unwrap();
    for link in ["/docs/", "/api/v1/openapi.json", "/health", "/metrics"] {
        assert!(page.contains(&format!("href=\"{link}\"")), "{link}: {page}");
    }
}

#[tokio::test]
async fn the_docs_are_served_from_the_binary_and_work_under_the_csp() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(location(&res), "/docs/");

    let res = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let page = res.text().await.unwrap();
    // Everything the page loads comes from this origin, and it has no inline script the CSP
    // would block.
    assert!(!page.contains("://"), "no external resource: {page}");
    let scripts: Vec<&str> = page.split("<script").skip(1).collect();
    assert!(!scripts.is_empty());
    for script in &scripts {
        let tag = script.split('>').next().unwrap();
        assert!(tag.contains("src="), "inline script in the page: {script}");
    }
    for (file, content_type) in [
        ("swagger-ui.css", "text/css"),
        ("index.css", "text/css"),
        ("swagger-ui-bundle.js", "javascript"),
        ("swagger-ui-standalone-preset.js", "javascript"),
        ("swagger-initializer.js", "javascript"),
    ] {
        assert!(page.contains(file), "the page loads {file}");
        let res = app
            .client
            .get(app.url(&format!("/docs/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{file}");
        let ct = res.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(ct.contains(content_type), "{file}: {ct}");
        let text = res.text().await.unwrap();
        if file == "swagger-initializer.js" {
            assert!(text.contains("/api/v1/openapi.json"), "{text}");
            assert!(text.contains("\"validatorUrl\": \"none\""), "{text}");
        }
    }
    // The document it reads is served to the same origin, and "try it out" reaches the API
    // with the page's cookie: a signed-in browser's call works.
    let user = app.signed_in("admin@acme.example").await;
    let res = user
        .client
        .get(app.url("/api/v1/auth/me"))
        .header(header::REFERER, app.url("/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_docs_can_be_turned_off() {
    let app = spawn_app_with(|s| portal_server::Settings {
        docs_enabled: Some(false),
        ..s
    })
    .await;
    for path in ["/docs", "/docs/", "/docs/swagger-ui.css"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_error(res, 404, "NOT_FOUND").await;
    }
    let body: Value = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["links"].get("docs").is_none(), "{body}");
    assert!(app.openapi_document().await["paths"].is_object());
}
