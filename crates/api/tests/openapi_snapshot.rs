//! `docs/openapi.json` is the document the code generates: this test fails when a route,
//! schema or status changes without the committed file being regenerated with
//! `UPDATE_OPENAPI=1 cargo test -p portal-api --test openapi_snapshot` (`just openapi`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::PathBuf;

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = portal_api::openapi::document().to_pretty_json().unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date with the code: regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p portal-api --test openapi_snapshot` (or `just openapi`)"
    );
    // The running server serves this same document (`GET /api/v1/openapi.json` calls the same
    // function); a few routes every client relies on must be in it.
    let doc: serde_json::Value = serde_json::from_str(&committed).unwrap();
    for path in [
        "/api/v1/dashboard/stats",
        "/api/v1/widget/send",
        "/tenant/{tenantId}/portal",
        "/health",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}
