//! The README's demo journey with nothing simulated inside the service (end to end):
//! a real `redis-server` (stores, Pub/Sub, the outbound Stream), the platform sandbox served
//! in-process over HTTP and consuming the Stream, and the service with Redis stores and every
//! downstream URL (Auth, Tenant, State Manager, Genesys login and API, Meta Graph) pointed at
//! the sandbox. Real HTTP and a real WebSocket, as a browser would:
//! sign-in through the sandbox's Genesys login page → the five onboarding steps for the
//! new-company user → dashboard → history → a socket → widget send → the socket receives
//! `message_update` and `sent`/`delivered`/`read`, which travelled sandbox → Redis → service.
//!
//! Run on each Redis topology (issue 12: one node, a 3-master Cluster, a Sentinel-managed
//! master), with two instances: the widget send goes through one, the socket listening for
//! its events is on the other. The Cluster is the test's own: the sandbox's status events
//! would make the shared one's cached metrics stale under other tests (`redis_support`).

use crate::helpers::*;
use crate::redis_support::{Deployment, on_topologies};
use portal_domain::ports::system::SystemClock;
use portal_domain::secret::SecretString;
use portal_sandbox::demo::ACME_ADMIN_EMAIL;
use portal_server::Settings;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const NEW_USER: &str = "new@newco.example";
/// How long one expected event may take (delivery itself takes about 1 s).
const EVENT_WITHIN: Duration = Duration::from_secs(10);

struct Rig {
    app: TestApp,
    /// A second instance on the same Redis (the socket of step 4 is there).
    other: TestApp,
    sandbox: String,
    platform: portal_sandbox::Platform,
    /// Kept alive: the Redis deployment, the sandbox's Stream consumer.
    _redis: Deployment,
    _consumer: portal_sandbox::OutboundConsumer,
}

async fn rig(redis: Deployment) -> Rig {
    let platform = portal_sandbox::Platform::demo(Arc::new(SystemClock));
    // The sandbox reads the Stream on the node holding it and publishes through the topology.
    let stream_node = redis.node_url_for("outbound.message").await;
    let consumer = portal_sandbox::consume_outbound_with(
        SecretString::from(stream_node),
        redis.settings(),
        &platform,
    )
    .await
    .expect("the sandbox consumes the outbound Stream");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sandbox = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let served = portal_sandbox::serve(
        listener,
        platform.clone(),
        portal_sandbox::Options::default(),
    )
    .expect("the sandbox starts");
    tokio::spawn(served.server);

    let base = sandbox.as_str();
    let settings = |s: Settings| Settings {
        auth_service_url: Some(base.to_owned()),
        tenant_service_url: Some(base.to_owned()),
        state_manager_url: Some(base.to_owned()),
        genesys_login_base_url: Some(format!("{base}/genesys")),
        genesys_api_base_url: Some(format!("{base}/genesys")),
        meta_graph_base_url: Some(format!("{base}/meta")),
        meta_graph_version: Some("v19.0".to_owned()),
        ..with_redis(s, redis.config())
    };
    let app = spawn_app_with(settings).await;
    let other = spawn_app_with(settings).await;
    Rig {
        app,
        other,
        sandbox,
        platform,
        _redis: redis,
        _consumer: consumer,
    }
}

impl Rig {
    async fn sign_in(&self, email: &str) -> User {
        let client = new_client();
        let sign_in = self.app.sign_in_with(&client, email).await;
        // The login page is the sandbox's, not a simulator inside the service.
        assert!(
            sign_in
                .authorize_url
                .starts_with(&format!("{}/genesys/oauth/authorize?", self.sandbox)),
            "{}",
            sign_in.authorize_url
        );
        self.app.user(client, &sign_in, email).await
    }

    async fn get(&self, user: &User, path: &str) -> Value {
        ok_json(user.client.get(self.app.url(path)).send().await.unwrap()).await
    }

    async fn post(&self, user: &User, path: &str, body: Value) -> Response {
        user.client
            .post(self.app.url(path))
            .header("X-CSRF-Token", &user.csrf)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

async fn ok_json(res: Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

on_topologies!(journey:
    the_demo_journey_over_redis_and_every_http_adapter_against_the_sandbox => Deployment::single(),
    the_demo_journey_on_a_redis_cluster => Deployment::own_cluster(),
    the_demo_journey_on_a_sentinel_managed_master => Deployment::sentinel(),
);

async fn journey(redis: Deployment) {
    let rig = rig(redis).await;

    // 1. The new-company user signs in through the sandbox's Genesys login: no tenant yet.
    let newco = rig.sign_in(NEW_USER).await;
    let me = rig.get(&newco, "/api/v1/auth/me").await;
    assert_eq!(me["email"], NEW_USER, "{me}");
    assert_eq!(me["tenantId"], Value::Null, "{me}");
    assert_eq!(me["onboardingRequired"], true, "{me}");

    // 2. Onboarding, all five steps; credentials checked by the sandbox's Genesys and Graph.
    let step1 = ok_json(
        rig.post(
            &newco,
            "/api/v1/onboarding/step1",
            json!({"companyName": "NewCo Ltd", "region": "eu-west-1", "contactEmail": NEW_USER}),
        )
        .await,
    )
    .await;
    let tenant = step1["tenantId"].as_str().unwrap().to_owned();
    // A refused secret is refused by the sandbox's Genesys, over HTTP.
    let refused = rig
        .post(
            &newco,
            "/api/v1/onboarding/step2",
            json!({"clientId": "newco-client-0001", "clientSecret": "invalid-secret-0001", "region": "eu-west-1"}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let step2 = ok_json(
        rig.post(
            &newco,
            "/api/v1/onboarding/step2",
            json!({"clientId": "newco-client-0001", "clientSecret": "genesys-secret-0001", "region": "eu-west-1"}),
        )
        .await,
    )
    .await;
    assert_eq!(step2["validated"], true, "{step2}");
    let step3 = ok_json(
        rig.post(
            &newco,
            "/api/v1/onboarding/step3",
            json!({"phoneNumberId": "1098765432", "systemUserToken": "EAAG-system-user-token-0001"}),
        )
        .await,
    )
    .await;
    assert_eq!(step3["nextStep"], 4, "{step3}");
    assert!(step3["phoneNumber"].is_string(), "{step3}");
    let validate = rig.get(&newco, "/api/v1/onboarding/validate").await;
    assert_eq!(validate["genesys"], "success", "{validate}");
    assert_eq!(validate["whatsapp"], "success", "{validate}");
    let done = ok_json(
        rig.post(&newco, "/api/v1/onboarding/complete", json!({}))
            .await,
    )
    .await;
    assert_eq!(done["status"], "active", "{done}");
    assert_eq!(done["webhooks"]["secret"].as_str().unwrap().len(), 64);
    let me = rig.get(&newco, "/api/v1/auth/me").await;
    assert_eq!(me["tenantId"], tenant.as_str(), "{me}");
    assert_eq!(me["onboardingRequired"], false, "{me}");
    // The sandbox's Tenant Service holds the configuration the service sent it.
    let record = rig
        .platform
        .state()
        .tenant_record(tenant.parse().unwrap())
        .expect("the tenant exists in the sandbox");
    assert_eq!(
        record.genesys_client_id.as_deref(),
        Some("newco-client-0001")
    );
    assert_eq!(
        record.whatsapp_phone_number_id.as_deref(),
        Some("1098765432")
    );
    assert!(record.onboarded_at.is_some());
    // Its dashboard works (a new company: nothing yet).
    let stats = rig.get(&newco, "/api/v1/dashboard/stats?period=week").await;
    assert_eq!(stats["totalMessages"], 0, "{stats}");

    // 3. An Acme admin: dashboard and history from the sandbox's State Manager.
    let admin = rig.sign_in(ACME_ADMIN_EMAIL).await;
    let stats = rig.get(&admin, "/api/v1/dashboard/stats?period=week").await;
    assert!(stats["totalMessages"].as_u64().unwrap() > 0, "{stats}");
    let threads = rig
        .get(
            &admin,
            "/api/v1/history/threads?page=1&limit=20&status=active",
        )
        .await;
    let first = &threads["data"][0];
    assert_eq!(first["status"], "active", "{threads}");
    assert!(threads["pagination"]["total"].as_u64().unwrap() >= 1);
    let conversation = first["conversation_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/history/threads/{conversation}/messages");
    let before = rig.get(&admin, &path).await;
    assert_eq!(before["conversation_id"], conversation.as_str(), "{before}");
    assert_eq!(before["wa_id"], first["wa_id"]);
    let count_before = before["messages"].as_array().unwrap().len();

    // 4. A live socket on the other instance, then a widget send over REST on this one.
    let mut ws = rig.other.connect(&admin, acme()).await;
    let res = admin
        .client
        .post(rig.app.url("/api/v1/widget/send"))
        .header("X-CSRF-Token", &admin.csrf)
        .header("Idempotency-Key", "journey-send-0001")
        .json(&json!({"conversationId": conversation, "text": "Hello from the journey"}))
        .send()
        .await
        .unwrap();
    let sent = ok_json(res).await;
    assert_eq!(sent["status"], "queued", "{sent}");
    let message_id = sent["message_id"].as_str().unwrap().to_owned();

    // 5. The events travelled sandbox → Redis Pub/Sub → the other instance → the socket, in
    //    order.
    let update = event_about(&mut ws, "message_update", &message_id, EVENT_WITHIN).await;
    assert_eq!(update["data"]["type"], "outbound", "{update}");
    assert_eq!(update["data"]["text"], "Hello from the journey");
    assert_eq!(update["data"]["conversation_id"], conversation.as_str());
    for status in ["sent", "delivered", "read"] {
        let event = event_about(&mut ws, "status_update", &message_id, EVENT_WITHIN).await;
        assert_eq!(event["data"]["status"], status, "{event}");
    }

    // 6. The history (the sandbox's State Manager, over HTTP) shows the message, read.
    let after = rig.get(&admin, &path).await;
    let messages = after["messages"].as_array().unwrap();
    assert_eq!(messages.len(), count_before + 1, "{after}");
    let mine = messages
        .iter()
        .find(|m| m["message_id"] == message_id.as_str())
        .expect("the sent message is in the history");
    assert_eq!(mine["status"], "read", "{mine}");
}
