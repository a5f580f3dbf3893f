//! The audit trail, black box: a whole journey on Redis (sign-ins, refreshes, the wizard,
//! widget sends, cache refreshes, refusals) leaves per-tenant trails that verify and hold no
//! secret, token, message text or session ID (every stored entry scanned in Redis); an entry
//! altered in Redis is exactly the break `verify` reports; the trail is for its tenant's
//! admins, paged with a cursor; a store that is down never fails the request (the entry goes
//! to the log with `audit=true` and is counted).

use crate::helpers::*;
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::crypto::sha256_hex;
use portal_domain::model::ConversationStatus;
use portal_domain::ports::stores::{
    AppendOutcome, AuditCursor, AuditLog, AuditRecord, AuditRetention, AuditScope, StoredAudit,
};
use portal_redis::RedisServer;
use portal_sandbox::demo;
use portal_server::stores::Stores;
use portal_server::{Overrides, Settings};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const MESSAGE_TEXT: &str = "Customer-confidential reply text 4711";
const GOOD_SECRET: &str = "genesys-secret-0001";
const GOOD_TOKEN: &str = "EAAG-system-user-token-0001";

async fn post(app: &TestApp, user: &User, path: &str, body: Value) -> Response {
    user.client
        .post(app.url(path))
        .header("x-csrf-token", &user.csrf)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn ok_json(res: Response) -> Value {
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// Every entry of the caller's tenant trail, newest first, paging with `nextCursor`.
async fn trail(app: &TestApp, admin: &User) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = app.url("/api/v1/audit?limit=7");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = ok_json(admin.client.get(url).send().await.unwrap()).await;
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return entries,
        }
    }
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

async fn verify(app: &TestApp, admin: &User) -> Value {
    ok_json(
        admin
            .client
            .get(app.url("/api/v1/audit/verify"))
            .send()
            .await
            .unwrap(),
    )
    .await
}

type StreamEntry = (String, HashMap<String, String>);

async fn stream(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<StreamEntry> {
    redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap()
}

/// The raw session ID inside a signed `sessionId=...` cookie (its last 43 characters) and its
/// store key.
fn session_secrets(cookie: &str) -> [String; 2] {
    let value = cookie.trim_start_matches("sessionId=");
    let id = &value[value.len() - 43..];
    [id.to_owned(), sha256_hex(id.as_bytes())]
}

#[tokio::test]
async fn a_journey_leaves_trails_that_verify_and_hold_no_secret() {
    let redis = RedisServer::start().await;
    let app = spawn_on_redis(&redis.url(), |s| Settings {
        rate_limit_auth_max: 8,
        ..s
    })
    .await;
    let mut secrets: Vec<String> = vec![
        MESSAGE_TEXT.into(),
        GOOD_SECRET.into(),
        GOOD_TOKEN.into(),
        "sim_rt_".into(),
        "sim_at_".into(),
    ];

    // A new customer onboards.
    let newco = app.signed_in(demo::NEWCO_ADMIN_EMAIL).await;
    let step1 = ok_json(
        post(
            &app,
            &newco,
            "/api/v1/onboarding/step1",
            json!({"companyName": "NewCo Ltd", "region": "eu-west-1", "contactEmail": "new@newco.example"}),
        )
        .await,
    )
    .await;
    let tenant = step1["tenantId"].as_str().unwrap().to_owned();
    let refused = post(
        &app,
        &newco,
        "/api/v1/onboarding/step2",
        json!({"clientId": "newco-client-0001", "clientSecret": "invalid-secret-0001", "region": "eu-west-1"}),
    )
    .await;
    assert_error(refused, 400, "VALIDATION_FAILED").await;
    secrets.push("invalid-secret-0001".into());
    ok_json(
        post(
            &app,
            &newco,
            "/api/v1/onboarding/step2",
            json!({"clientId": "newco-client-0001", "clientSecret": GOOD_SECRET, "region": "eu-west-1"}),
        )
        .await,
    )
    .await;
    ok_json(
        post(
            &app,
            &newco,
            "/api/v1/onboarding/step3",
            json!({"phoneNumberId": "1098765432", "systemUserToken": GOOD_TOKEN}),
        )
        .await,
    )
    .await;
    ok_json(
        newco
            .client
            .get(app.url(&format!("/api/v1/onboarding/validate?tenantId={tenant}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let done = ok_json(
        post(
            &app,
            &newco,
            "/api/v1/onboarding/complete",
            json!({"tenantId": tenant}),
        )
        .await,
    )
    .await;
    for secret in [
        &done["webhooks"]["secret"],
        &done["webhooks"]["meta"]["verifyToken"],
    ] {
        secrets.push(secret.as_str().unwrap().to_owned());
    }

    // An agent works: a send, a refresh of the figures, a token refresh, a ticket; and is
    // refused twice (no CSRF token; another tenant's socket).
    let agent = app.signed_in(demo::ACME_AGENT_EMAIL).await;
    let conversation = conversation(acme(), ConversationStatus::Active);
    let sent = ok_json(
        post(
            &app,
            &agent,
            "/api/v1/widget/send",
            json!({"conversationId": conversation.to_string(), "text": MESSAGE_TEXT}),
        )
        .await,
    )
    .await;
    assert_eq!(app.refresh_dashboard(&agent.client).await.status(), 200);
    assert_eq!(
        post(&app, &agent, "/api/v1/auth/refresh", json!({}))
            .await
            .status(),
        200
    );
    secrets.push(app.ticket(&agent).await);
    let no_csrf = agent
        .client
        .post(app.url("/api/v1/dashboard/refresh"))
        .send()
        .await
        .unwrap();
    assert_error(no_csrf, 403, "CSRF_FAILED").await;
    let other = app
        .try_connect(globex(), Some(&agent.cookie), Some(FRONTEND), None)
        .await
        .map(drop)
        .unwrap_err();
    assert_eq!(other.0, 403);
    assert_eq!(
        post(&app, &agent, "/api/v1/auth/logout", json!({}))
            .await
            .status(),
        200
    );
    let admin = app.signed_in(demo::ACME_ADMIN_EMAIL).await;
    for user in [&newco, &agent, &admin] {
        secrets.extend(session_secrets(&user.cookie));
        secrets.push(user.csrf.clone());
    }
    // Acme's trail, through the API (its admin; newest first).
    let acme_trail = trail(&app, &admin).await;
    let acme_actions = actions(&acme_trail);
    for expected in [
        "auth.sign_in",
        "widget.send",
        "dashboard.cache_refresh",
        "auth.refresh",
        "auth.csrf_refused",
        "access.tenant_isolation_refused",
        "auth.sign_out",
    ] {
        assert!(
            acme_actions.contains(&expected),
            "{expected} in {acme_actions:?}"
        );
    }
    let send = acme_trail
        .iter()
        .find(|e| e["action"] == "widget.send")
        .unwrap();
    assert_eq!(send["details"]["messageId"], sent["message_id"]);
    assert_eq!(send["details"]["conversationId"], conversation.to_string());
    assert_eq!(send["actor"]["email"], demo::ACME_AGENT_EMAIL);
    assert_eq!(send["actor"]["role"], "agent");
    assert_eq!(send["clientIp"], "127.0.0.1");
    assert!(send["correlationId"].is_string());
    assert_eq!(verify(&app, &admin).await["valid"], true);

    // NewCo's trail: every step and its outcome, then the sign-in of the finished wizard.
    let newco_admin = app.signed_in(demo::NEWCO_ADMIN_EMAIL).await;
    secrets.extend(session_secrets(&newco_admin.cookie));
    let newco_trail = trail(&app, &newco_admin).await;
    let mut newco_actions = actions(&newco_trail);
    newco_actions.reverse();
    assert_eq!(
        newco_actions,
        [
            "onboarding.organization",
            "onboarding.genesys_credentials",
            "onboarding.genesys_credentials",
            "onboarding.whatsapp_credentials",
            "onboarding.validation",
            "onboarding.completed",
            "auth.sign_in",
        ]
    );
    assert_eq!(newco_trail[5]["details"]["check"], "refused");
    assert_eq!(newco_trail[4]["details"]["check"], "passed");
    assert_eq!(
        newco_trail[4]["details"]["fieldsChanged"],
        json!(["clientId", "clientSecret", "region"])
    );
    let verified = verify(&app, &newco_admin).await;
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(verified["checked"], 7);

    // Sign-in attempts past the per-IP limit are refused (and audited, without a tenant).
    let mut refused_sign_ins = 0;
    for _ in 0..8 {
        let res = new_client()
            .get(app.url("/api/v1/auth/login"))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            refused_sign_ins += 1;
        }
    }
    assert!(refused_sign_ins > 0);
    // A read of the trail waits for the instance's queued entries (all trails') first.
    trail(&app, &admin).await;

    // Every stored entry of every trail (the platform's too), as Redis holds it: no secret.
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("audit*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut stored = String::new();
    let mut platform_actions = Vec::new();
    for key in &keys {
        if key.starts_with("audit_anchor") {
            continue;
        }
        for (_, fields) in stream(&mut conn, key).await {
            let entry: Value = serde_json::from_str(&fields["e"]).unwrap();
            if key == "audit:{platform}" {
                platform_actions.push(entry["action"].as_str().unwrap().to_owned());
            }
            stored.push_str(&fields["e"]);
        }
    }
    assert!(keys.len() >= 3, "{keys:?}");
    assert!(platform_actions.contains(&"auth.sign_in_rate_limited".to_owned()));
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "a secret, token, message text or session ID is in the trail: {secret}"
        );
    }
}

#[tokio::test]
async fn verify_reports_exactly_the_entry_altered_in_redis() {
    let redis = RedisServer::start().await;
    let app = spawn_on_redis(&redis.url(), |s| s).await;
    let admin = app.signed_in(demo::ACME_ADMIN_EMAIL).await;
    for _ in 0..4 {
        assert_eq!(app.refresh_dashboard(&admin.client).await.status(), 200);
    }
    assert_eq!(verify(&app, &admin).await["valid"], true);

    // An operator with Redis access rewrites the trail with one entry's outcome changed.
    let key = format!("audit:{{{}}}", acme());
    let mut conn = redis.connection().await;
    let entries = stream(&mut conn, &key).await;
    assert_eq!(entries.len(), 5, "a sign-in and four refreshes");
    let (altered_id, altered) = &entries[2];
    let altered_entry: Value = serde_json::from_str(&altered["e"]).unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    for (id, fields) in &entries {
        let e = if id == altered_id {
            fields["e"].replace("\"outcome\":\"success\"", "\"outcome\":\"failure\"")
        } else {
            fields["e"].clone()
        };
        assert!(
            id != altered_id || e != fields["e"],
            "the entry was changed"
        );
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg(id)
            .arg("e")
            .arg(e)
            .arg("h")
            .arg(&fields["h"])
            .arg("p")
            .arg(&fields["p"])
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    let report = verify(&app, &admin).await;
    assert_eq!(
        report,
        json!({
            "valid": false,
            "checked": 5,
            "broken": 1,
            "firstBreak": {
                "cursor": altered_id,
                "entryId": altered_entry["id"],
                "reason": "altered"
            }
        })
    );

    // An entry removed breaks the chain at the one after it.
    let (removed, _) = &entries[3];
    let _: i64 = redis::cmd("XDEL")
        .arg(&key)
        .arg(removed)
        .query_async(&mut conn)
        .await
        .unwrap();
    let report = verify(&app, &admin).await;
    assert_eq!(report["broken"], 2);
    assert_eq!(report["firstBreak"]["cursor"], altered_id.as_str());
    // The service appends after the tampering as before (the new entry chains to the head).
    assert_eq!(app.refresh_dashboard(&admin.client).await.status(), 200);
    assert_eq!(verify(&app, &admin).await["checked"], 5);
}

#[tokio::test]
async fn the_trail_is_for_its_tenants_admins_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    let admin = app.signed_in(demo::ACME_ADMIN_EMAIL).await;
    for _ in 0..3 {
        assert_eq!(app.refresh_dashboard(&admin.client).await.status(), 200);
    }
    let globex = app.signed_in(demo::GLOBEX_ADMIN_EMAIL).await;

    let first = ok_json(
        admin
            .client
            .get(app.url("/api/v1/audit?limit=2&action=dashboard.cache_refresh"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = ok_json(
        admin
            .client
            .get(app.url(&format!(
                "/api/v1/audit?limit=2&action=dashboard.cache_refresh&cursor={cursor}"
            )))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(second["entries"].as_array().unwrap().len(), 1);
    assert!(second["nextCursor"].is_null());
    let times: Vec<&str> = first["entries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["entries"].as_array().unwrap())
        .map(|e| e["time"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    // Globex's admin sees Globex's trail only; agents and viewers see none.
    let globex_trail = trail(&app, &globex).await;
    assert!(
        globex_trail
            .iter()
            .all(|e| e["tenantId"] == demo::globex_tenant_id().to_string())
    );
    for email in [demo::ACME_AGENT_EMAIL, demo::ACME_VIEWER_EMAIL] {
        let user = app.signed_in(email).await;
        for path in ["/api/v1/audit", "/api/v1/audit/verify"] {
            let res = user.client.get(app.url(path)).send().await.unwrap();
            assert_error(res, 403, "FORBIDDEN").await;
        }
    }
    let res = admin
        .client
        .get(app.url("/api/v1/audit?limit=0&cursor=abc&action=auth.nothing"))
        .send()
        .await
        .unwrap();
    let body = assert_error(res, 400, "VALIDATION_FAILED").await;
    assert_eq!(problem_fields(&body), ["limit", "cursor", "action"]);
}

/// A trail store that refuses every operation.
struct Down;

#[async_trait]
impl AuditLog for Down {
    async fn append(
        &self,
        _: AuditScope,
        _: &AuditRecord,
        _: AuditRetention,
    ) -> Result<AppendOutcome, StoreError> {
        Err(StoreError::Unavailable("audit store down".into()))
    }
    async fn newest(
        &self,
        _: AuditScope,
        _: Option<AuditCursor>,
        _: usize,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        Err(StoreError::Unavailable("audit store down".into()))
    }
    async fn oldest(
        &self,
        _: AuditScope,
        _: Option<AuditCursor>,
        _: usize,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        Err(StoreError::Unavailable("audit store down".into()))
    }
    async fn anchor(&self, _: AuditScope) -> Result<String, StoreError> {
        Err(StoreError::Unavailable("audit store down".into()))
    }
}

#[tokio::test]
async fn an_audit_store_that_is_down_never_fails_the_request() {
    let app = spawn_app_with_overrides(
        |s| s,
        Overrides {
            wrap_stores: Some(Arc::new(|mut stores: Stores| {
                stores.ports.audit = Arc::new(Down);
                stores
            })),
            ..Overrides::default()
        },
    )
    .await;
    let admin = app.signed_in(demo::ACME_ADMIN_EMAIL).await;
    let request_id = format!("audit-down-{}", uuid::Uuid::new_v4());
    let res = admin
        .client
        .post(app.url("/api/v1/dashboard/refresh"))
        .header("x-csrf-token", &admin.csrf)
        .header("x-request-id", &request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the request does not fail");

    // Reading waits for this instance's queue, so the entry has been handled by now.
    let res = admin
        .client
        .get(app.url("/api/v1/audit"))
        .send()
        .await
        .unwrap();
    assert_error(res, 503, "SERVICE_UNAVAILABLE").await;
    let logged = captured_logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["fields"]["audit"] == true
                && l["fields"]["entry"]
                    .as_str()
                    .is_some_and(|e| e.contains(&request_id))
        })
        .expect("the entry is in the log with audit=true");
    assert_eq!(logged["level"], "WARN");
    assert_eq!(logged["fields"]["reason"], "store_unavailable");
    let entry: Value = serde_json::from_str(logged["fields"]["entry"].as_str().unwrap()).unwrap();
    assert_eq!(entry["action"], "dashboard.cache_refresh");

    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portal_audit_fallback_total{reason=\"store_unavailable\"}")),
        "{metrics}"
    );
}
