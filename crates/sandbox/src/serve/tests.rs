//! The sandbox's routes and fault injection, through an actix test service.

use super::faults::inject_faults;
use super::*;
use crate::demo::acme_tenant_id;
use crate::test_support::{demo_start, platform_at};
use actix_web::App;
use actix_web::test;

/// The sandbox's app over a fresh demo platform, as an actix test service.
macro_rules! app {
    () => {{
        let (platform, _) = platform_at(demo_start());
        let login_auth = platform.auth();
        test::init_service(
            App::new()
                .app_data(web::Data::new(Sims::new(platform)))
                .app_data(web::Data::new(Faults::default()))
                .wrap(from_fn(inject_faults))
                .configure(move |cfg| {
                    routes(
                        cfg,
                        login_auth,
                        crate::RegisteredClient {
                            client_id: DEFAULT_CLIENT_ID.to_owned(),
                            redirect_uris: DEFAULT_REDIRECT_URIS.map(str::to_owned).to_vec(),
                        },
                    )
                }),
        )
        .await
    }};
}

#[::core::prelude::v1::test]
fn paths_map_to_their_route_and_admin_paths_to_none() {
    for (path, route) in [
        ("/api/v1/auth/profile", Some(Route::AuthService)),
        ("/api/v1/tenants", Some(Route::TenantService)),
        ("/api/v1/tenants/by-user/u1", Some(Route::TenantService)),
        (
            "/api/v1/conversations/abc/messages",
            Some(Route::StateManager),
        ),
        ("/api/v1/metrics/t1", Some(Route::StateManager)),
        ("/genesys/oauth/token", Some(Route::Genesys)),
        ("/meta/v18.0/123", Some(Route::Meta)),
        ("/api/v1/authx", None),
        ("/health", None),
        ("/_admin/faults", None),
    ] {
        assert_eq!(Route::of_path(path), route, "{path}");
    }
}

#[actix_web::test]
async fn an_error_fault_fails_only_its_route_until_removed_over_the_admin_endpoint() {
    let app = app!();
    let metrics = format!("/api/v1/metrics/{}?period=today", acme_tenant_id());
    let get = |uri: &str| test::TestRequest::get().uri(uri).to_request();

    let ok = test::call_service(&app, get(&metrics)).await;
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = test::read_body_json(ok).await;
    assert!(body["totalMessages"].as_u64().unwrap() > 0, "{body}");

    let put = test::TestRequest::put()
        .uri("/_admin/faults")
        .set_json(json!({"route": "stateManager", "errorRate": 1.0}))
        .to_request();
    assert_eq!(test::call_service(&app, put).await.status(), 200);
    assert_eq!(test::call_service(&app, get(&metrics)).await.status(), 503);
    // Other routes, /health and the admin endpoint are not affected.
    let tenant = format!("/api/v1/tenants/by-user/{}", crate::demo::ACME_ADMIN_ID);
    assert_eq!(test::call_service(&app, get(&tenant)).await.status(), 200);
    assert_eq!(test::call_service(&app, get("/health")).await.status(), 200);
    let listed: serde_json::Value =
        test::read_body_json(test::call_service(&app, get("/_admin/faults")).await).await;
    assert_eq!(listed[0]["route"], "stateManager", "{listed}");

    let delete = test::TestRequest::delete()
        .uri("/_admin/faults")
        .to_request();
    assert_eq!(test::call_service(&app, delete).await.status(), 204);
    assert_eq!(test::call_service(&app, get(&metrics)).await.status(), 200);
}

#[actix_web::test]
async fn bad_faults_are_refused() {
    let app = app!();
    for body in [
        json!({"route": "stateManager", "errorRate": 2.0}),
        json!({"route": "nowhere", "errorRate": 0.5}),
    ] {
        let put = test::TestRequest::put()
            .uri("/_admin/faults")
            .set_json(&body)
            .to_request();
        assert_eq!(test::call_service(&app, put).await.status(), 400, "{body}");
    }
    assert!(faults_from_json(r#"[{"route":"meta","timeout":true}]"#).unwrap()[0].timeout);
}

#[actix_web::test]
async fn unknown_ids_are_404_in_the_shapes_the_adapters_read() {
    let app = app!();
    let get = |uri: &str| test::TestRequest::get().uri(uri).to_request();
    let res = test::call_service(&app, get("/api/v1/tenants/by-user/sim-user-nobody")).await;
    assert_eq!(res.status(), 404);
    let res = test::call_service(&app, get("/api/v1/auth/profile")).await;
    assert_eq!(res.status(), 401);
}
