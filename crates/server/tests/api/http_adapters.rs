//! The service with every HTTP adapter, against the HTTP sandbox of the whole platform
//! (`portal_sandbox::serve`), both in-process on port 0: sign-in through the
//! sandbox's Genesys login, the Auth and Tenant Services over HTTP, the dashboard over the
//! State Manager over HTTP, and the sandbox's fault injection (stale figures, then 503, then
//! recovery). Memory stores: Redis is exercised elsewhere.

use crate::helpers::{TestApp, assert_error, new_client, spawn_app_with, start_sandbox};
use portal_domain::ports::downstream::{GenesysError, WhatsAppError};
use portal_domain::ports::system::SystemClock;
use portal_domain::secret::SecretString;
use portal_sandbox::demo::{ACME_ADMIN_EMAIL, acme_tenant_id};
use portal_server::Settings;
use portal_server::downstreams::{DownstreamUrls, Downstreams, Ports};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

struct Rig {
    app: TestApp,
    sandbox: String,
    admin: Client,
}

fn every_url(sandbox: &str) -> DownstreamUrls {
    DownstreamUrls {
        auth_service: Some(sandbox.to_owned()),
        tenant_service: Some(sandbox.to_owned()),
        state_manager: Some(sandbox.to_owned()),
        genesys_login_base: Some(format!("{sandbox}/genesys")),
        genesys_api_base: Some(format!("{sandbox}/genesys")),
        genesys_regional: false,
        meta_graph_base: Some(format!("{sandbox}/meta")),
        meta_graph_version: Some("v19.0".to_owned()),
    }
}

async fn spawn() -> Rig {
    let sandbox = start_sandbox();
    let urls = every_url(&sandbox);
    let app = spawn_app_with(move |s| Settings {
        auth_service_url: urls.auth_service,
        tenant_service_url: urls.tenant_service,
        state_manager_url: urls.state_manager,
        genesys_login_base_url: urls.genesys_login_base,
        genesys_api_base_url: urls.genesys_api_base,
        meta_graph_base_url: urls.meta_graph_base,
        meta_graph_version: urls.meta_graph_version,
        // Recovery after the fault is removed must not take the default 30 s.
        state_manager_breaker_open_secs: 1,
        ..s
    })
    .await;
    Rig {
        app,
        sandbox,
        admin: Client::new(),
    }
}

impl Rig {
    async fn fault(&self, body: Value) -> reqwest::Response {
        self.admin
            .put(format!("{}/_admin/faults", self.sandbox))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn clear_faults(&self) {
        let res = self
            .admin
            .delete(format!("{}/_admin/faults", self.sandbox))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }

    async fn refresh(&self, client: &Client) -> reqwest::Response {
        self.app.refresh_dashboard(client).await
    }
}

#[tokio::test]
async fn sign_in_me_and_dashboard_over_every_http_adapter_with_state_manager_faults() {
    let rig = spawn().await;

    // `/health` asks each platform service for its own `/health` (Appendix B).
    let health: Value = reqwest::get(rig.app.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for service in ["authService", "tenantService", "stateManager"] {
        assert_eq!(health["checks"][service], "ok", "{health}");
    }

    // Sign-in: the service's authorize URL is the sandbox's Genesys login page; the code is
    // exchanged with the sandbox's Auth Service, the tenant looked up in its Tenant Service.
    let client = new_client();
    let sign_in = rig.app.sign_in_with(&client, ACME_ADMIN_EMAIL).await;
    assert!(
        sign_in
            .authorize_url
            .starts_with(&format!("{}/genesys/oauth/authorize?", rig.sandbox)),
        "{}",
        sign_in.authorize_url
    );
    assert_eq!(sign_in.response.status(), StatusCode::FOUND);
    let me: Value = rig.app.me(&client).await.json().await.unwrap();
    assert_eq!(me["email"], ACME_ADMIN_EMAIL, "{me}");
    assert_eq!(me["tenantId"], acme_tenant_id().to_string(), "{me}");
    assert_eq!(me["onboardingRequired"], false, "{me}");

    // The dashboard over the State Manager adapter.
    let res = client
        .get(rig.app.url("/api/v1/dashboard/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let fresh: Value = res.json().await.unwrap();
    assert!(fresh.get("stale").is_none(), "{fresh}");
    assert!(fresh["totalMessages"].as_u64().unwrap() > 0, "{fresh}");

    // A bad fault is refused; 100 % errors on the State Manager only.
    let res = rig
        .fault(json!({"route": "stateManager", "errorRate": 1.5}))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = rig
        .fault(json!({"route": "stateManager", "errorRate": 1.0, "latencyMs": 0, "timeout": false}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    // Refresh drops the cached figures; the next read fails downstream and serves the last
    // known figures, flagged stale.
    assert_eq!(rig.refresh(&client).await.status(), StatusCode::OK);
    let res = client
        .get(rig.app.url("/api/v1/dashboard/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let stale: Value = res.json().await.unwrap();
    assert_eq!(stale["stale"], true, "{stale}");
    assert_eq!(stale["totalMessages"], fresh["totalMessages"]);

    // A period never fetched has nothing stale to serve.
    let res = client
        .get(rig.app.url("/api/v1/dashboard/stats?period=month"))
        .send()
        .await
        .unwrap();
    assert_error(res, 503, "SERVICE_UNAVAILABLE").await;

    // Sign-in still works: only the State Manager is faulted.
    let other = new_client();
    let res = rig
        .app
        .sign_in_with(&other, ACME_ADMIN_EMAIL)
        .await
        .response;
    assert_eq!(res.status(), StatusCode::FOUND);

    // Fault removed: once the breakers let a call through again (open for 1 s here), the
    // figures come back.
    rig.clear_faults().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let recovered = loop {
        let res = client
            .get(rig.app.url("/api/v1/dashboard/stats?period=month"))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::OK {
            break res.json::<Value>().await.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dashboard did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(recovered.get("stale").is_none(), "{recovered}");
    assert!(recovered["totalMessages"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn genesys_and_meta_adapters_against_the_sandbox() {
    let sandbox = start_sandbox();
    let platform = portal_sandbox::Platform::demo(Arc::new(SystemClock));
    let d = Downstreams::build(
        &every_url(&sandbox),
        Ports::simulated(&platform),
        Default::default(),
        Arc::new(portal_domain::ports::system::NoopTelemetry),
    )
    .unwrap();
    assert_eq!(
        d.http,
        vec![
            "authService",
            "tenantService",
            "stateManager",
            "genesysCloud",
            "metaGraph"
        ]
    );
    let region = portal_domain::model::Region::EuWest1;

    let token = d
        .ports
        .genesys
        .client_credentials(region, "client-1", &SecretString::from("s3cret"))
        .await
        .unwrap();
    let org = d
        .ports
        .genesys
        .organization(region, &token.access_token)
        .await
        .unwrap();
    assert!(!org.id.is_empty() && !org.name.is_empty());
    let refused = d
        .ports
        .genesys
        .client_credentials(region, "client-1", &SecretString::from("invalid-secret"))
        .await;
    assert!(
        matches!(refused, Err(GenesysError::InvalidClient(_))),
        "{refused:?}"
    );

    let phone = d
        .ports
        .whatsapp
        .phone_number("1234567890", &SecretString::from("token"))
        .await
        .unwrap();
    assert_eq!(phone.id, "1234567890");
    let bad_token = d
        .ports
        .whatsapp
        .phone_number("1234567890", &SecretString::from("invalid-token"))
        .await;
    assert!(
        matches!(bad_token, Err(WhatsAppError::InvalidToken(_))),
        "{bad_token:?}"
    );
    let unknown = d
        .ports
        .whatsapp
        .phone_number("not-a-number", &SecretString::from("token"))
        .await;
    assert!(
        matches!(unknown, Err(WhatsAppError::NotFound)),
        "{unknown:?}"
    );
}
