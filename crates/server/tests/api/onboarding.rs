//! The onboarding wizard over real HTTP on the embedded default: the whole path of
//! `new@newco.example`, every refusal (input limits, order, expiry, isolation, roles, refused
//! credentials, the failed-attempt limit) and a retried completion.

use crate::helpers::*;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

const ACME: &str = "7c0e4b52-1a3f-4d6e-8a90-3c1d5e00ac3e";
const NEW_USER: &str = "new@newco.example";
const GOOD_SECRET: &str = "genesys-secret-0001";
const GOOD_TOKEN: &str = "EAAG-system-user-token-0001";
const PHONE_ID: &str = "1098765432";

/// The wizard's calls, made by a signed-in browser.
trait Wizard {
    async fn post(&self, app: &TestApp, path: &str, body: Value) -> Response;
    async fn get(&self, app: &TestApp, path: &str) -> Response;
    async fn me(&self, app: &TestApp) -> Value;
    async fn step1(&self, app: &TestApp) -> String;
    async fn step2(&self, app: &TestApp, secret: &str) -> Response;
    async fn step3(&self, app: &TestApp, token: &str) -> Response;
    async fn status(&self, app: &TestApp, tenant: &str) -> Response;
}

impl Wizard for User {
    async fn post(&self, app: &TestApp, path: &str, body: Value) -> Response {
        self.client
            .post(app.url(path))
            .header("X-CSRF-Token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, app: &TestApp, path: &str) -> Response {
        self.client.get(app.url(path)).send().await.unwrap()
    }

    async fn me(&self, app: &TestApp) -> Value {
        app.me(&self.client).await.json().await.unwrap()
    }

    async fn step1(&self, app: &TestApp) -> String {
        let res = self
            .post(
                app,
                "/api/v1/onboarding/step1",
                json!({"companyName": "NewCo Ltd", "region": "eu-west-1", "contactEmail": NEW_USER}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        body["tenantId"].as_str().unwrap().to_owned()
    }

    async fn step2(&self, app: &TestApp, secret: &str) -> Response {
        self.post(
            app,
            "/api/v1/onboarding/step2",
            json!({"clientId": "newco-client-0001", "clientSecret": secret, "region": "eu-west-1"}),
        )
        .await
    }

    async fn step3(&self, app: &TestApp, token: &str) -> Response {
        self.post(
            app,
            "/api/v1/onboarding/step3",
            json!({"phoneNumberId": PHONE_ID, "systemUserToken": token}),
        )
        .await
    }

    async fn status(&self, app: &TestApp, tenant: &str) -> Response {
        self.get(app, &format!("/api/v1/onboarding/status/{tenant}"))
            .await
    }
}

async fn json_ok(res: Response) -> Value {
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// The `details.fields[*].field` names of a `VALIDATION_FAILED` answer.
async fn refused_fields(res: Response) -> Vec<String> {
    problem_fields(&assert_error(res, 400, "VALIDATION_FAILED").await)
}

#[tokio::test]
async fn new_user_walks_the_whole_wizard_and_ends_with_an_active_tenant() {
    let app = spawn_app().await;
    let user = app.signed_in(NEW_USER).await;
    let me = user.me(&app).await;
    assert_eq!(me["tenantId"], Value::Null);
    assert_eq!(me["onboardingRequired"], true);

    // Step 1 creates the tenant and binds the session to it.
    let res = user
        .post(
            &app,
            "/api/v1/onboarding/step1",
            json!({"companyName": "NewCo Ltd", "region": "eu-west-1", "contactEmail": NEW_USER}),
        )
        .await;
    let body = json_ok(res).await;
    assert_eq!(body["success"], true);
    assert_eq!(body["currentStep"], 1);
    assert_eq!(body["nextStep"], 2);
    assert_eq!(
        body["data"],
        json!({"companyName": "NewCo Ltd", "region": "eu-west-1"})
    );
    let tenant = body["tenantId"].as_str().unwrap().to_owned();
    let me = user.me(&app).await;
    assert_eq!(me["tenantId"], tenant.as_str());
    assert_eq!(me["onboardingRequired"], true);

    // Step 2 and 3: accepted credentials; nothing secret comes back.
    let res = user
        .post(
            &app,
            "/api/v1/onboarding/step2",
            json!({"tenantId": tenant, "clientId": "newco-client-0001", "clientSecret": GOOD_SECRET, "region": "eu-west-1"}),
        )
        .await;
    let text = res.text().await.unwrap();
    assert!(!text.contains(GOOD_SECRET), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["validated"], true);
    assert_eq!(body["currentStep"], 2);
    let res = user.step3(&app, GOOD_TOKEN).await;
    let text = res.text().await.unwrap();
    assert!(!text.contains(GOOD_TOKEN), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["currentStep"], 3);
    assert_eq!(body["nextStep"], 4);
    assert_eq!(body["phoneNumber"], "+1 555-5432");

    // Resume shows the progress without secrets.
    let res = user.status(&app, &tenant).await;
    let text = res.text().await.unwrap();
    assert!(!text.contains(GOOD_SECRET) && !text.contains(GOOD_TOKEN));
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["currentStep"], 3);
    assert_eq!(status["completedSteps"], json!([1, 2, 3]));
    assert_eq!(status["genesysConfigured"], true);
    assert_eq!(status["whatsappConfigured"], true);
    assert_eq!(status["organizationDetails"]["companyName"], "NewCo Ltd");

    // Step 4: both integrations reported separately.
    let body = json_ok(
        user.get(
            &app,
            &format!("/api/v1/onboarding/validate?tenantId={tenant}"),
        )
        .await,
    )
    .await;
    assert_eq!(body["genesys"], "success");
    assert_eq!(body["whatsapp"], "success");

    // Step 5: webhook URLs from BASE_URL, a 256-bit secret, the tenant active.
    let done = json_ok(
        user.post(
            &app,
            "/api/v1/onboarding/complete",
            json!({"tenantId": tenant}),
        )
        .await,
    )
    .await;
    assert_eq!(done["success"], true);
    assert_eq!(done["status"], "active");
    assert_eq!(done["tenantId"], tenant.as_str());
    assert_eq!(
        done["webhooks"]["genesys"]["url"],
        app.url(&format!("/webhooks/genesys/{tenant}")).as_str()
    );
    assert_eq!(
        done["webhooks"]["meta"]["url"],
        app.url(&format!("/webhooks/meta/{tenant}")).as_str()
    );
    let secret = done["webhooks"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64, "256 bits in hex");
    assert!(
        done["webhooks"]["meta"]["verifyToken"]
            .as_str()
            .unwrap()
            .len()
            >= 32
    );

    let me = user.me(&app).await;
    assert_eq!(me["tenantId"], tenant.as_str());
    assert_eq!(me["onboardingRequired"], false);

    // A retried completion returns the same secret; the wizard is no longer "active".
    let again = json_ok(
        user.post(&app, "/api/v1/onboarding/complete", json!({}))
            .await,
    )
    .await;
    assert_eq!(again["webhooks"]["secret"], secret.as_str());
    assert_eq!(
        again["webhooks"]["meta"]["verifyToken"],
        done["webhooks"]["meta"]["verifyToken"]
    );
    assert_error(user.status(&app, &tenant).await, 404, "NOT_FOUND").await;

    // Signing in again lands on the dashboard of the now active tenant.
    let client = new_client();
    let res = app.sign_in_with(&client, NEW_USER).await.response;
    assert_eq!(location(&res), format!("{FRONTEND}/dashboard"));
    let me: Value = app.me(&client).await.json().await.unwrap();
    assert_eq!(me["tenantId"], tenant.as_str());
    assert_eq!(me["onboardingRequired"], false);
}

#[tokio::test]
async fn each_field_is_held_to_its_limits() {
    let app = spawn_app().await;
    let user = app.signed_in(NEW_USER).await;
    let step1 = |company: &str, region: &str, email: &str| json!({"companyName": company, "region": region, "contactEmail": email});
    for (body, field) in [
        (step1("N", "us-east-1", NEW_USER), "companyName"),
        (
            step1(&"N".repeat(101), "us-east-1", NEW_USER),
            "companyName",
        ),
        (step1("NewCo", "mars-north-1", NEW_USER), "region"),
        (step1("NewCo", "us-east-1", "not-an-email"), "contactEmail"),
        (
            json!({"region": "us-east-1", "contactEmail": NEW_USER}),
            "companyName",
        ),
    ] {
        let res = user.post(&app, "/api/v1/onboarding/step1", body).await;
        assert_eq!(refused_fields(res).await, [field]);
    }
    // Every problem at once.
    let res = user
        .post(&app, "/api/v1/onboarding/step1", step1("N", "nowhere", "x"))
        .await;
    assert_eq!(refused_fields(res).await.len(), 3);
    // The bounds themselves are accepted (2 and 100 characters).
    for name in ["NC".to_owned(), "N".repeat(100)] {
        let res = user
            .post(
                &app,
                "/api/v1/onboarding/step1",
                step1(&name, "us-east-1", NEW_USER),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{} chars", name.len());
    }

    let long_secret = "s".repeat(201);
    for (body, field) in [
        (
            json!({"clientId": "short", "clientSecret": GOOD_SECRET, "region": "us-east-1"}),
            "clientId",
        ),
        (
            json!({"clientId": "c".repeat(101), "clientSecret": GOOD_SECRET, "region": "us-east-1"}),
            "clientId",
        ),
        (
            json!({"clientId": "newco-client-0001", "clientSecret": "too-short", "region": "us-east-1"}),
            "clientSecret",
        ),
        (
            json!({"clientId": "newco-client-0001", "clientSecret": long_secret, "region": "us-east-1"}),
            "clientSecret",
        ),
        (
            json!({"clientId": "newco-client-0001", "clientSecret": GOOD_SECRET, "region": "moon"}),
            "region",
        ),
        (
            json!({"tenantId": "tenant_123", "clientId": "newco-client-0001", "clientSecret": GOOD_SECRET, "region": "us-east-1"}),
            "tenantId",
        ),
    ] {
        let res = user.post(&app, "/api/v1/onboarding/step2", body).await;
        let text = res.text().await.unwrap();
        assert!(
            !text.contains(&long_secret) && !text.contains("too-short"),
            "{text}"
        );
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["code"], "VALIDATION_FAILED");
        assert_eq!(body["details"]["fields"][0]["field"], field, "{body}");
    }

    assert_eq!(user.step2(&app, GOOD_SECRET).await.status(), StatusCode::OK);
    let long_token = "t".repeat(1025);
    for (body, field) in [
        (
            json!({"phoneNumberId": "12ab34", "systemUserToken": GOOD_TOKEN}),
            "phoneNumberId",
        ),
        (
            json!({"phoneNumberId": "1".repeat(65), "systemUserToken": GOOD_TOKEN}),
            "phoneNumberId",
        ),
        (
            json!({"phoneNumberId": "", "systemUserToken": GOOD_TOKEN}),
            "phoneNumberId",
        ),
        (
            json!({"phoneNumberId": PHONE_ID, "systemUserToken": "short"}),
            "systemUserToken",
        ),
        (
            json!({"phoneNumberId": PHONE_ID, "systemUserToken": long_token}),
            "systemUserToken",
        ),
    ] {
        let res = user.post(&app, "/api/v1/onboarding/step3", body).await;
        assert_eq!(refused_fields(res).await, [field]);
    }
    // None of these refusals moved the wizard.
    let me = user.me(&app).await;
    let status = json_ok(user.status(&app, me["tenantId"].as_str().unwrap()).await).await;
    assert_eq!(status["currentStep"], 2);
}

#[tokio::test]
async fn steps_out_of_order_are_refused() {
    let app = spawn_app().await;
    let user = app.signed_in(NEW_USER).await;
    // Nothing before step 1.
    let body = assert_error(user.step2(&app, GOOD_SECRET).await, 400, "INVALID_STEP").await;
    assert_eq!(body["details"]["currentStep"], 0);
    user.step1(&app).await;
    assert_error(user.step3(&app, GOOD_TOKEN).await, 400, "INVALID_STEP").await;
    assert_error(
        user.get(&app, "/api/v1/onboarding/validate").await,
        400,
        "INVALID_STEP",
    )
    .await;
    assert_error(
        user.post(&app, "/api/v1/onboarding/complete", json!({}))
            .await,
        400,
        "INVALID_STEP",
    )
    .await;
    assert_eq!(user.step2(&app, GOOD_SECRET).await.status(), StatusCode::OK);
    assert_error(
        user.post(&app, "/api/v1/onboarding/complete", json!({}))
            .await,
        400,
        "INVALID_STEP",
    )
    .await;
}

#[tokio::test]
async fn an_expired_wizard_is_session_expired() {
    // The store's TTL runs on the server's own clock (worker runtimes), which a test cannot
    // pause: a 1-second TTL and a real wait of just over it.
    let app = spawn_app_with(|mut s| {
        s.onboarding_state_ttl_secs = 1;
        s
    })
    .await;
    let user = app.signed_in(NEW_USER).await;
    let tenant = user.step1(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let body = assert_error(user.step2(&app, GOOD_SECRET).await, 400, "SESSION_EXPIRED").await;
    assert_eq!(body["error"], "Onboarding session expired");
    assert_error(user.status(&app, &tenant).await, 404, "NOT_FOUND").await;
    // The login session itself is still fine.
    assert_eq!(app.me(&user.client).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn another_tenants_id_in_body_or_path_is_refused() {
    let app = spawn_app().await;
    let user = app.signed_in(NEW_USER).await;
    let own = user.step1(&app).await;
    let res = user
        .post(
            &app,
            "/api/v1/onboarding/step2",
            json!({"tenantId": ACME, "clientId": "newco-client-0001", "clientSecret": GOOD_SECRET, "region": "us-east-1"}),
        )
        .await;
    assert_error(res, 403, "TENANT_ISOLATION_VIOLATION").await;
    assert_error(
        user.status(&app, ACME).await,
        403,
        "TENANT_ISOLATION_VIOLATION",
    )
    .await;
    assert_error(
        user.get(
            &app,
            &format!("/api/v1/onboarding/validate?tenantId={ACME}"),
        )
        .await,
        403,
        "TENANT_ISOLATION_VIOLATION",
    )
    .await;
    assert_error(
        user.post(
            &app,
            "/api/v1/onboarding/complete",
            json!({"tenantId": ACME}),
        )
        .await,
        403,
        "TENANT_ISOLATION_VIOLATION",
    )
    .await;
    // Its own wizard is untouched.
    let status = json_ok(user.status(&app, &own).await).await;
    assert_eq!(status["currentStep"], 1);
}

#[tokio::test]
async fn viewers_and_agents_may_not_onboard() {
    let app = spawn_app().await;
    for email in ["viewer@acme.example", "agent@acme.example"] {
        let user = app.signed_in(email).await;
        let res = user
            .post(
                &app,
                "/api/v1/onboarding/step1",
                json!({"companyName": "Acme Again", "region": "us-east-1", "contactEmail": email}),
            )
            .await;
        assert_error(res, 403, "FORBIDDEN").await;
        assert_error(user.step2(&app, GOOD_SECRET).await, 403, "FORBIDDEN").await;
        assert_error(user.status(&app, ACME).await, 403, "FORBIDDEN").await;
        assert_error(
            user.get(&app, "/api/v1/onboarding/validate").await,
            403,
            "FORBIDDEN",
        )
        .await;
    }
}

#[tokio::test]
async fn posts_without_the_csrf_token_are_refused() {
    let app = spawn_app().await;
    let user = app.signed_in(NEW_USER).await;
    let res = user
        .client
        .post(app.url("/api/v1/onboarding/step1"))
        .json(&json!({"companyName": "NewCo", "region": "us-east-1", "contactEmail": NEW_USER}))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "CSRF_FAILED").await;
    assert_eq!(
        user.me(&app).await["tenantId"],
        Value::Null,
        "no tenant was created"
    );
}

#[tokio::test]
async fn refused_credentials_leave_the_state_unchanged() {
    let app = spawn_app().await;
    let user = app.signed_in(NEW_USER).await;
    let tenant = user.step1(&app).await;
    let before = json_ok(user.status(&app, &tenant).await).await;

    let res = user.step2(&app, "invalid-secret-0001").await;
    let text = res.text().await.unwrap();
    assert!(!text.contains("invalid-secret-0001"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["code"], "VALIDATION_FAILED");
    assert_eq!(body["details"]["fields"][0]["field"], "clientSecret");
    assert_eq!(json_ok(user.status(&app, &tenant).await).await, before);

    assert_eq!(user.step2(&app, GOOD_SECRET).await.status(), StatusCode::OK);
    let before = json_ok(user.status(&app, &tenant).await).await;
    let res = user.step3(&app, "invalid-token-0001").await;
    assert_eq!(refused_fields(res).await, ["systemUserToken"]);
    assert_eq!(json_ok(user.status(&app, &tenant).await).await, before);
}

#[tokio::test]
async fn the_sixth_failed_attempt_is_rate_limited() {
    let app = spawn_app().await;
    let user = app.signed_in(NEW_USER).await;
    user.step1(&app).await;
    for attempt in 1..=5 {
        let res = user.step2(&app, "invalid-secret-0001").await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "attempt {attempt}");
    }
    let res = user.step2(&app, "invalid-secret-0001").await;
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    // The failed-attempt limiter's own figures, not the API limiter's (100 a minute).
    let header = |name: &str| res.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("ratelimit-limit"), "5");
    assert_eq!(header("ratelimit-remaining"), "0");
    let reset: u64 = header("ratelimit-reset").parse().unwrap();
    assert!(reset > 60 && reset <= 900, "{reset}");
    assert_error(res, 429, "RATE_LIMIT_EXCEEDED").await;
    // Even good credentials wait for the window.
    assert_error(
        user.step2(&app, GOOD_SECRET).await,
        429,
        "RATE_LIMIT_EXCEEDED",
    )
    .await;
}

#[tokio::test]
async fn the_openapi_document_lists_the_wizard() {
    let app = spawn_app().await;
    let doc = app.openapi_document().await;
    for (path, method) in [
        ("/api/v1/onboarding/step1", "post"),
        ("/api/v1/onboarding/step2", "post"),
        ("/api/v1/onboarding/step3", "post"),
        ("/api/v1/onboarding/validate", "get"),
        ("/api/v1/onboarding/complete", "post"),
        ("/api/v1/onboarding/status/{tenantId}", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    let step2 = &doc["components"]["schemas"]["Step2Request"]["properties"];
    assert_eq!(step2["clientSecret"]["format"], "password");
}
