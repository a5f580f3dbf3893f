//! The first hour on the embedded default: the service and the frontend share one host name
//! (`localhost`), a sign-in started on the other name of the machine (`127.0.0.1`) is sent
//! to the canonical one instead of ending in 400 `INVALID_STATE`, and start-up names the
//! URLs a person needs.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn a_sign_in_started_on_127_0_0_1_ends_signed_in_on_localhost() {
    let app = spawn_app().await;
    let client = new_client();
    let other_name = format!(
        "http://127.0.0.1:{}/api/v1/auth/login?login_hint=agent@acme.example",
        app.port
    );
    let res = client.get(&other_name).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        location(&res),
        app.url("/api/v1/auth/login?login_hint=agent@acme.example"),
        "the same sign-in, on BASE_URL's host name"
    );
    assert!(
        res.headers().get("set-cookie").is_none(),
        "no pre-login cookie for the wrong name"
    );
    // From there the usual chain works.
    let authorize = app.start_login(&client, Some("agent@acme.example")).await;
    let callback = app.authorize(&client, &authorize).await;
    let res = client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND, "signed in");
    assert!(location(&res).starts_with(FRONTEND), "{}", location(&res));
    let me: Value = app.me(&client).await.json().await.unwrap();
    assert_eq!(me["email"], "agent@acme.example", "{me}");
}

#[tokio::test]
async fn the_redirect_to_the_canonical_name_costs_no_sign_in_attempt() {
    let app = spawn_app_with(|s| portal_server::Settings {
        rate_limit_auth_max: 2,
        ..s
    })
    .await;
    let client = new_client();
    for _ in 0..5 {
        let res = client
            .get(format!("http://127.0.0.1:{}/api/v1/auth/login", app.port))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FOUND, "not limited");
    }
    let res = client
        .get(app.url("/api/v1/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND, "the limit is intact");
}

#[tokio::test]
async fn start_up_names_the_sign_in_links_the_docs_and_the_websocket_urls() {
    let portal = start_portal([("LOG_LEVEL", "info")]);
    let base = format!("http://localhost:{}", portal.port);
    let lines = portal.lines_until(|l| l.contains("live traffic")).await;
    let logged: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let urls: Vec<&str> = logged
        .iter()
        .filter_map(|l| l["fields"]["url"].as_str())
        .collect();
    for user in [
        "admin@acme.example",
        "agent@acme.example",
        "viewer@acme.example",
        "admin@globex.example",
        "new@newco.example",
    ] {
        let link = format!("{base}/api/v1/auth/login?login_hint={user}");
        assert!(urls.contains(&link.as_str()), "{link} in {urls:#?}");
    }
    assert!(urls.contains(&format!("{base}/docs").as_str()), "{urls:#?}");
    let ws = logged
        .iter()
        .find(|l| {
            l["fields"]["url"]
                == format!("ws://localhost:{}/tenant/{}/portal", portal.port, acme()).as_str()
        })
        .expect("Acme's WebSocket URL");
    assert!(
        ws["fields"]["note"]
            .as_str()
            .unwrap()
            .contains(&format!("Origin: {FRONTEND}")),
        "{ws}"
    );
}
