//! Log lines: a full sign-in's output (at `debug`) contains no session ID, code, state or
//! token; JSON lines carry the request's ID and, with tracing on, its trace and span IDs at
//! the top level, keep one type per field and hold no Rust debug text; `LOG_FORMAT=pretty`
//! writes readable text, without colour codes when it is not a terminal.

use crate::helpers::*;
use serde_json::Value;

#[tokio::test]
async fn sign_in_logs_no_secrets() {
    let app = spawn_app().await;
    let signed = app.sign_in("agent@acme.example").await;
    let cookie = set_cookie(&signed.response, "sessionId").unwrap();
    let csrf = app.csrf(&app.client).await;
    app.client
        .post(app.url("/api/v1/auth/refresh"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    app.client
        .post(app.url("/api/v1/auth/logout"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();

    // Every test's lines (at debug): none may hold this sign-in's secrets.
    let logs = captured_logs();
    assert!(logs.contains("session created"), "sign-in was logged");
    let session_value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("sessionId=");
    let session_id = &session_value[session_value.len() - 43..];
    let code = query_param(&signed.callback_url, "code").unwrap();
    let state = query_param(&signed.callback_url, "state").unwrap();
    for (what, secret) in [
        ("session id", session_id),
        ("signed cookie", session_value),
        ("code", code.as_str()),
        ("state", state.as_str()),
        ("csrf token", csrf.as_str()),
    ] {
        assert!(!logs.contains(secret), "the {what} leaked into the logs");
    }
    for prefix in ["sim_at_", "sim_rt_", "sim_code_"] {
        assert!(
            !logs.contains(prefix),
            "a token ({prefix}…) leaked into the logs"
        );
    }
}

/// Every string value anywhere in `v`, with the key it sits under.
fn strings<'a>(v: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    match v {
        Value::String(s) => out.push((key, s)),
        Value::Array(items) => items.iter().for_each(|i| strings(i, key, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| strings(v, k, out)),
        _ => {}
    }
}

/// Every value of a field named `name` anywhere in `v`.
fn values_of<'a>(v: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| values_of(i, name, out)),
        Value::Object(map) => {
            for (k, v) in map {
                if k == name {
                    out.push(v);
                }
                values_of(v, name, out);
            }
        }
        _ => {}
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0')
}

#[tokio::test]
async fn json_lines_carry_request_and_trace_ids_with_stable_types() {
    let app = spawn_app().await;
    app.sign_in("viewer@acme.example").await;
    // A refusal (401, logged by the error mapping) and a success, each with a known ID.
    let refused = format!("log-refused-{}", uuid::Uuid::new_v4());
    let res = new_client()
        .get(app.url("/api/v1/auth/me"))
        .header("X-Request-ID", &refused)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let served = format!("log-served-{}", uuid::Uuid::new_v4());
    let res = app
        .client
        .get(app.url("/api/v1/dashboard/stats"))
        .header("X-Request-ID", &served)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let text = captured_logs();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for id in [&refused, &served] {
        let mine: Vec<&Value> = lines.iter().filter(|l| l["request_id"] == **id).collect();
        assert!(
            mine.len() >= 2,
            "{id}: more than the summary line: {mine:#?}"
        );
        let trace = mine[0]["trace_id"].as_str().unwrap_or_default().to_owned();
        for line in &mine {
            assert!(
                is_hex(line["trace_id"].as_str().unwrap_or(""), 32),
                "{line}"
            );
            assert!(is_hex(line["span_id"].as_str().unwrap_or(""), 16), "{line}");
            assert_eq!(
                line["trace_id"],
                trace.as_str(),
                "one trace per request: {line}"
            );
        }
        // The trace ID is the request span's, as exported.
        let exported = finished_spans()
            .into_iter()
            .find(|s| {
                s.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "request_id" && kv.value.as_str() == id.as_str())
            })
            .expect("the request span was exported");
        assert_eq!(exported.span_context.trace_id().to_string(), trace);
    }
    let refusal = lines
        .iter()
        .find(|l| {
            l["request_id"] == refused.as_str() && l["fields"]["message"] == "request refused"
        })
        .expect("the 401 is logged");
    assert_eq!(refusal["fields"]["status"], 401, "an integer: {refusal}");

    // Across every line of this test binary: one type per field, no Rust debug text.
    for line in &lines {
        for name in ["status", "http.response.status_code", "elapsed_ms", "port"] {
            let mut found = Vec::new();
            values_of(line, name, &mut found);
            for v in found {
                assert!(
                    v.is_u64() || v.is_i64(),
                    "`{name}` must be an integer: {line}"
                );
            }
        }
        let mut texts = Vec::new();
        strings(line, "", &mut texts);
        for (key, value) in texts {
            let debug = value.starts_with("Some(")
                || value == "None"
                || value.starts_with("Ok(")
                || value.starts_with("Err(")
                || value.starts_with("[\"");
            assert!(!debug, "`{key}` holds Rust debug text {value:?}: {line}");
        }
    }
}

#[tokio::test]
async fn without_tracing_lines_carry_the_request_id_only() {
    let portal = start_portal([("LOG_LEVEL", "info")]);
    let id = format!("plain-{}", uuid::Uuid::new_v4());
    let (status, lines) = portal.get_logged("/api/v1/auth/me", &id).await;
    assert_eq!(status, 401);
    let mine: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("JSON ({e}): {l}")))
        .filter(|l| l["request_id"] == id.as_str())
        .collect();
    assert!(!mine.is_empty());
    for line in &mine {
        assert!(
            line.get("trace_id").is_none(),
            "no tracing, no trace ID: {line}"
        );
    }
}

#[tokio::test]
async fn pretty_lines_are_readable_text_without_colour_codes_in_a_pipe() {
    let portal = start_portal([("LOG_LEVEL", "info"), ("LOG_FORMAT", "pretty")]);
    let id = format!("pretty-{}", uuid::Uuid::new_v4());
    let (status, lines) = portal.get_logged("/api/v1/auth/me", &id).await;
    assert_eq!(status, 401);
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_err(),
            "not JSON: {line}"
        );
        assert!(!line.contains('\u{1b}'), "no colour codes: {line:?}");
    }
    let finished = lines
        .iter()
        .find(|l| l.contains(&id) && l.contains("request finished"))
        .unwrap();
    for part in [
        "INFO",
        "status=401",
        "GET /api/v1/auth/me",
        &format!("request_id={id}"),
    ] {
        assert!(finished.contains(part), "{part:?} in {finished:?}");
    }
}
