//! The Tenant Service adapter against a wiremock server.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic

use portal_domain::DownstreamFailure;
use portal_domain::model::{
    Email, GenesysConfig, NewTenant, Region, TenantId, TenantStatus, TenantUpdate, UserId,
    WebhookConfig, WhatsAppConfig,
};
use portal_domain::ports::downstream::{TenantService, TenantServiceError};
use portal_domain::secret::secret;
use portal_outbound::context::{self, RequestContext};
use portal_outbound::testing;
use portal_tenant_service::{HttpTenantService, SERVICE, Timeouts};
use serde_json::json;
use std::time::Duration;
use time::macros::datetime;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT: &str = "6f1c2b8e-8f4e-4c53-9a57-4f3f0f0b8a11";

async fn setup() -> (MockServer, HttpTenantService) {
    let server = MockServer::start().await;
    let ds = testing::downstream(SERVICE, &server.uri(), testing::breaker_after(3));
    let svc = HttpTenantService::new(ds).with_timeouts(Timeouts {
        create: Duration::from_millis(200),
        get: Duration::from_millis(200),
        update: Duration::from_millis(200),
    });
    (server, svc)
}

fn tenant_json() -> serde_json::Value {
    json!({
        "id": TENANT, "companyName": "Acme Corp", "region": "us-east-1",
        "contactEmail": "admin@acme.example", "status": "onboarding",
        "createdAt": "2026-02-12T08:00:00Z"
    })
}

/// An update that sets nothing (the reply handling is the same whatever is sent).
fn no_change() -> TenantUpdate {
    TenantUpdate::default()
}

fn new_tenant() -> NewTenant {
    NewTenant {
        company_name: "Acme Corp".into(),
        region: Region::UsEast1,
        contact_email: Email::parse("admin@acme.example").unwrap(),
        created_by: UserId::parse("u-1").unwrap(),
    }
}

#[tokio::test]
async fn create_posts_the_new_tenant_once_with_correlation_headers() {
    let (server, svc) = setup().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/tenants"))
        .and(header("content-type", "application/json"))
        .and(header("x-request-id", "req-9"))
        .and(body_json(json!({
            "companyName": "Acme Corp", "region": "us-east-1",
            "contactEmail": "admin@acme.example", "status": "onboarding", "createdBy": "u-1"
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"data": tenant_json()})))
        .expect(1)
        .mount(&server)
        .await;

    let tenant = context::scope(RequestContext::new("req-9"), svc.create(&new_tenant()))
        .await
        .unwrap();

    assert_eq!(tenant.id, TENANT.parse::<TenantId>().unwrap());
    assert_eq!(tenant.company_name, "Acme Corp");
    assert_eq!(tenant.status, TenantStatus::Onboarding);
}

#[tokio::test]
async fn create_is_never_retried() {
    let (server, svc) = setup().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        svc.create(&new_tenant()).await.unwrap_err(),
        TenantServiceError::Failure(DownstreamFailure::Unavailable { status: Some(503) })
    );
}

#[tokio::test]
async fn refusals_carry_the_reason() {
    for status in [400, 409, 422] {
        let (server, svc) = setup().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(json!({"message": "company name already taken"})),
            )
            .mount(&server)
            .await;
        assert_eq!(
            svc.create(&new_tenant()).await.unwrap_err(),
            TenantServiceError::Rejected("company name already taken".into()),
            "{status}"
        );
    }
}

#[tokio::test]
async fn update_reads_a_bare_tenant_and_retries_after_503() {
    let (server, svc) = setup().await;
    Mock::given(method("PUT"))
        .and(path(format!("/api/v1/tenants/{TENANT}")))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/api/v1/tenants/{TENANT}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(tenant_json()))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;

    let tenant = svc
        .update(TENANT.parse().unwrap(), &no_change())
        .await
        .unwrap();

    assert_eq!(tenant.region, Region::UsEast1);
}

#[tokio::test]
async fn update_error_statuses() {
    let cases: [(ResponseTemplate, TenantServiceError); 6] = [
        (ResponseTemplate::new(404), TenantServiceError::NotFound),
        (
            ResponseTemplate::new(401),
            TenantServiceError::Failure(DownstreamFailure::Protocol("unauthorized".into())),
        ),
        (
            ResponseTemplate::new(403),
            TenantServiceError::Failure(DownstreamFailure::Protocol("forbidden".into())),
        ),
        (
            ResponseTemplate::new(500),
            TenantServiceError::Failure(DownstreamFailure::Unavailable { status: Some(500) }),
        ),
        (
            ResponseTemplate::new(429).insert_header("retry-after", "30"),
            TenantServiceError::Failure(DownstreamFailure::RateLimited {
                retry_after: Some(Duration::from_secs(30)),
            }),
        ),
        (
            ResponseTemplate::new(200).set_delay(Duration::from_millis(500)),
            TenantServiceError::Failure(DownstreamFailure::Timeout),
        ),
    ];
    for (template, expected) in cases {
        let (server, svc) = setup().await;
        Mock::given(method("PUT"))
            .respond_with(template)
            .mount(&server)
            .await;
        assert_eq!(
            svc.update(TENANT.parse().unwrap(), &no_change())
                .await
                .unwrap_err(),
            expected
        );
    }
}

#[tokio::test]
async fn malformed_and_oversized_tenants_are_protocol_failures() {
    let (server, svc) = setup().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "not-a-uuid"})))
        .mount(&server)
        .await;
    assert!(matches!(
        svc.update(TENANT.parse().unwrap(), &no_change()).await,
        Err(TenantServiceError::Failure(DownstreamFailure::Protocol(_)))
    ));

    let server = MockServer::start().await;
    let svc = HttpTenantService::new(
        testing::downstream(SERVICE, &server.uri(), testing::breaker_after(3))
            .with_max_body_bytes(32),
    );
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tenant_json()))
        .mount(&server)
        .await;
    assert!(matches!(
        svc.update(TENANT.parse().unwrap(), &no_change()).await,
        Err(TenantServiceError::Failure(DownstreamFailure::Protocol(_)))
    ));
}

#[tokio::test]
async fn update_puts_camel_case_fields_with_secrets_in_the_body() {
    let (server, svc) = setup().await;
    Mock::given(method("PUT"))
        .and(path(format!("/api/v1/tenants/{TENANT}")))
        .and(body_json(json!({
            "genesysConfig": {"clientId": "cid", "clientSecret": "csecret", "region": "eu-west-1"},
            "whatsappConfig": {"phoneNumberId": "123", "systemUserToken": "wtoken", "phoneNumber": "+1 555-0100"},
            "webhooks": {
                "genesys": "https://p.example/webhooks/genesys/x",
                "meta": "https://p.example/webhooks/meta/x",
                "secret": "whsecret", "verifyToken": "vtoken"
            },
            "status": "active",
            "onboardedBy": "u-1",
            "onboardedAt": "2026-02-12T09:30:00Z"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(tenant_json()))
        .expect(1)
        .mount(&server)
        .await;
    let update = TenantUpdate {
        genesys_config: Some(GenesysConfig {
            client_id: "cid".into(),
            client_secret: secret("csecret"),
            region: Region::EuWest1,
        }),
        whatsapp_config: Some(WhatsAppConfig {
            phone_number_id: "123".into(),
            system_user_token: secret("wtoken"),
            phone_number: Some("+1 555-0100".into()),
        }),
        webhooks: Some(WebhookConfig {
            genesys_url: "https://p.example/webhooks/genesys/x".into(),
            meta_url: "https://p.example/webhooks/meta/x".into(),
            secret: secret("whsecret"),
            verify_token: secret("vtoken"),
        }),
        status: Some(TenantStatus::Active),
        onboarded_by: Some(UserId::parse("u-1").unwrap()),
        onboarded_at: Some(datetime!(2026-02-12 09:30:00 UTC)),
        ..TenantUpdate::default()
    };

    svc.update(TENANT.parse().unwrap(), &update).await.unwrap();
}

#[tokio::test]
async fn by_user_finds_the_tenant_or_none() {
    let (server, svc) = setup().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/tenants/by-user/u-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": tenant_json()})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/tenants/by-user/u-2"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/tenants/by-user/u-3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": null})))
        .mount(&server)
        .await;

    let found = svc.by_user(&UserId::parse("u-1").unwrap()).await.unwrap();
    assert_eq!(found.unwrap().company_name, "Acme Corp");
    assert_eq!(svc.by_user(&UserId::parse("u-2").unwrap()).await, Ok(None));
    assert_eq!(svc.by_user(&UserId::parse("u-3").unwrap()).await, Ok(None));
}

#[tokio::test]
async fn breaker_opens_and_further_calls_are_not_made() {
    let (server, svc) = setup().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&server)
        .await;
    for _ in 0..3 {
        svc.create(&new_tenant()).await.unwrap_err();
    }
    for _ in 0..3 {
        assert_eq!(
            svc.create(&new_tenant()).await.unwrap_err(),
            TenantServiceError::Failure(DownstreamFailure::CircuitOpen)
        );
    }
}
