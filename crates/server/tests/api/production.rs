//! The production profile (`PORTAL_ENV=production`, decisions §2): start-up refuses a
//! missing, insecure or placeholder setting and names every problem at once without echoing a
//! secret; a complete production configuration starts, with `Secure` cookies; the key ring
//! settings let an operator rotate `ENCRYPTION_KEY` without losing what the old key encrypted.

use portal_domain::ports::system::{Cipher, EncryptionContext};
use portal_domain::secret::SecretString;
use portal_redis::RedisServer;
use portal_server::{Application, Settings};
use reqwest::{StatusCode, header};
use std::collections::HashMap;
use std::process::Command;

const KEY: &str = "3f9a1c0e5b7d2a4c6e8f0a1b3c5d7e9f1a2b3c4d5e6f708192a3b4c5d6e7f801";
const OTHER_KEY: &str = "b1d2e3f405162738495a6b7c8d9eafb0c1d2e3f405162738495a6b7c8d9eafb0";
const COOKIE_SECRET: &str = "c8Yh2k9Qm4Xw7Rt1Zp6Ln3Vb5Gd0Fs8J";
const AUDIT_KEY: &str = "a7Kd3Lq9Wz2Xn5Rb8Tc1Vm4Hg6Jp0Fs3";

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A complete, valid production environment (Redis at `redis_url`; the platform services are
/// internal http URLs, which production allows; the public URLs are https).
fn production_env(redis_url: &str) -> HashMap<String, String> {
    env(&[
        ("PORTAL_ENV", "production"),
        ("REDIS_URL", redis_url),
        ("ENCRYPTION_KEY", KEY),
        ("COOKIE_SECRET", COOKIE_SECRET),
        ("AUDIT_HMAC_KEY", AUDIT_KEY),
        ("BASE_URL", "https://portal-api.example.com"),
        ("FRONTEND_URL", "https://portal.example.com"),
        ("GENESYS_CLIENT_ID", "portal-client"),
        ("GENESYS_REGIONAL", "true"),
        ("META_GRAPH_VERSION", "v18.0"),
        ("AUTH_SERVICE_URL", "http://127.0.0.1:9"),
        ("TENANT_SERVICE_URL", "http://127.0.0.1:9"),
        ("STATE_MANAGER_URL", "http://127.0.0.1:9"),
    ])
}

fn problems(vars: HashMap<String, String>) -> String {
    Settings::load_from(Some(vars))
        .expect_err("the configuration is refused")
        .to_string()
}

#[test]
fn production_with_nothing_set_names_every_missing_setting_at_once() {
    let text = problems(env(&[("PORTAL_ENV", "production")]));
    for name in [
        "REDIS_URL",
        "ENCRYPTION_KEY",
        "COOKIE_SECRET",
        "AUDIT_HMAC_KEY",
        "BASE_URL",
        "GENESYS_CLIENT_ID",
        "AUTH_SERVICE_URL",
        "TENANT_SERVICE_URL",
        "STATE_MANAGER_URL",
        "GENESYS_REGIONAL",
        "META_GRAPH_VERSION",
        // The default frontend is plain http://localhost:3000.
        "FRONTEND_URL: must be an https:// URL",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    // One line per problem.
    assert!(text.lines().count() >= 12, "{text}");
}

#[test]
fn a_complete_production_configuration_is_accepted() {
    let settings = Settings::load_from(Some(production_env("redis://127.0.0.1:6379/0"))).unwrap();
    assert!(settings.is_production());
    // Redis parts instead of the URL count too.
    let mut parts = production_env("unused");
    parts.remove("REDIS_URL");
    parts.insert("REDIS_HOST".into(), "redis.internal".into());
    assert!(Settings::load_from(Some(parts)).is_ok());
}

#[test]
fn insecure_and_placeholder_values_are_refused_without_echoing_secrets() {
    let mut vars = production_env("redis://:hunter2-redis-password@127.0.0.1:6379/0");
    for (k, v) in [
        ("ENCRYPTION_KEY", "0".repeat(64).as_str()),
        ("COOKIE_SECRET", "a".repeat(40).as_str()),
        ("AUDIT_HMAC_KEY", "b".repeat(40).as_str()),
        ("COOKIE_SECURE", "false"),
        ("FRONTEND_URL", "*"),
        ("BASE_URL", "http://portal-api.example.com"),
        ("GENESYS_REDIRECT_URI", "http://portal-api.example.com/cb"),
        ("META_GRAPH_BASE_URL", "http://graph.example.com"),
    ] {
        vars.insert(k.into(), v.into());
    }
    let text = problems(vars);
    for expected in [
        "ENCRYPTION_KEY: a placeholder",
        "COOKIE_SECRET: a placeholder",
        "AUDIT_HMAC_KEY: a placeholder",
        "COOKIE_SECURE: must not be false",
        "FRONTEND_URL: a wildcard origin",
        "BASE_URL: must be an https:// URL",
        "GENESYS_REDIRECT_URI: must be an https:// URL",
        "META_GRAPH_BASE_URL: must be an https:// URL",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    for secret in [
        "0".repeat(64),
        "a".repeat(40),
        "b".repeat(40),
        "hunter2-redis-password".to_owned(),
    ] {
        assert!(!text.contains(&secret), "a secret is echoed:\n{text}");
    }

    // Any repeated byte is a placeholder, and a short key is refused too.
    let mut vars = production_env("redis://127.0.0.1:6379/0");
    vars.insert("ENCRYPTION_KEY".into(), "ab".repeat(32));
    assert!(problems(vars).contains("ENCRYPTION_KEY: a placeholder"));
    let mut vars = production_env("redis://127.0.0.1:6379/0");
    vars.insert("ENCRYPTION_KEY".into(), KEY[..32].into());
    vars.insert("COOKIE_SECRET".into(), "too-short".into());
    let text = problems(vars);
    assert!(
        text.contains("ENCRYPTION_KEY: must be 64 hexadecimal characters"),
        "{text}"
    );
    assert!(
        text.contains("COOKIE_SECRET: must be at least 32 characters"),
        "{text}"
    );
    assert!(
        !text.contains(&KEY[..32]) && !text.contains("too-short"),
        "{text}"
    );
}

#[test]
fn development_keeps_its_friendly_defaults() {
    // Nothing set: the embedded default (simulators, generated secrets, plain http).
    let s = Settings::load_from(Some(env(&[]))).unwrap();
    assert!(!s.is_production());
    assert_eq!(s.shutdown_grace_seconds, 30);
    // What production refuses is fine for local use.
    let s = Settings::load_from(Some(env(&[
        ("COOKIE_SECURE", "false"),
        ("BASE_URL", "http://localhost:8080"),
    ])))
    .unwrap();
    assert_eq!(s.cookie_secure, Some(false));
}

#[test]
fn the_binary_refuses_to_start_in_production_and_lists_every_problem() {
    let out = Command::new(env!("CARGO_BIN_EXE_agent-portal"))
        .env_clear()
        .envs([
            ("PORTAL_ENV", "production"),
            ("PORT", "0"),
            ("COOKIE_SECRET", "not-long-enough-secret"),
            ("REDIS_URL", "redis://:hunter2-redis-password@10.0.0.1:6379"),
        ])
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(2), "exit status: {:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in [
        "ENCRYPTION_KEY",
        "COOKIE_SECRET: must be at least 32 characters",
        "BASE_URL",
        "GENESYS_CLIENT_ID",
        "AUTH_SERVICE_URL",
        "TENANT_SERVICE_URL",
        "STATE_MANAGER_URL",
        "FRONTEND_URL",
    ] {
        assert!(stderr.contains(name), "{name} missing from:\n{stderr}");
    }
    assert!(
        !stderr.contains("REDIS_URL"),
        "Redis is configured:\n{stderr}"
    );
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("not-long-enough-secret"),
        "a secret is echoed:\n{stderr}"
    );
    assert!(out.stdout.is_empty(), "it did not start serving");
}

#[tokio::test]
async fn production_cookies_are_secure_from_the_first_sign_in_hop() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let redis = RedisServer::start().await;
    let mut vars = production_env(&redis.url());
    vars.insert("PORT".into(), "0".into());
    vars.insert("HOST".into(), "127.0.0.1".into());
    vars.insert("WORKERS".into(), "1".into());
    let settings = Settings::load_from(Some(vars)).unwrap();
    let app = Application::build(settings).await.unwrap();
    assert!(
        app.state().web().secure_cookies,
        "session cookies are Secure"
    );
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    // `/auth/login` answers with the pre-login cookie, under the same Secure rule as the
    // session cookie, and sends the browser to the real Genesys login (no simulator).
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .get(format!("{address}/api/v1/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers()[header::LOCATION].to_str().unwrap();
    assert!(
        location.starts_with("https://login.mypurecloud.com/oauth/authorize?"),
        "{location}"
    );
    let cookies: Vec<&str> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(!cookies.is_empty(), "a pre-login cookie is set");
    for c in &cookies {
        assert!(c.contains("; Secure"), "not Secure: {c}");
        assert!(c.contains("HttpOnly"), "not HttpOnly: {c}");
    }

    // No simulator in production: the sandbox's Genesys login page is not mounted.
    let res = client
        .get(format!("{address}/_sandbox/genesys/oauth/authorize"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[test]
fn rotating_the_encryption_key_keeps_old_ciphertexts_readable() {
    let context = EncryptionContext {
        scope: "tenant:t-1".into(),
        field: "genesys.clientSecret",
    };
    let plaintext = SecretString::from("tenant secret".to_owned());
    let before = Settings::load_from(Some(env(&[("ENCRYPTION_KEY", KEY)])))
        .unwrap()
        .cipher()
        .unwrap()
        .expect("a configured key ring");
    let old = before.encrypt(&plaintext, &context);

    // Rotation: a new current key under a new id; the old one kept for decryption only.
    let after = Settings::load_from(Some(env(&[
        ("ENCRYPTION_KEY", OTHER_KEY),
        ("ENCRYPTION_KEY_ID", "k2"),
        ("ENCRYPTION_PREVIOUS_KEYS", &format!("k1:{KEY}")),
    ])))
    .unwrap()
    .cipher()
    .unwrap()
    .unwrap();
    assert_eq!(after.current_key_id(), "k2");
    use portal_domain::secret::ExposeSecret;
    assert_eq!(
        after.decrypt(&old, &context).unwrap().expose_secret(),
        "tenant secret"
    );
    // New writes use the new key, which the old ring cannot read.
    let new = after.encrypt(&plaintext, &context);
    assert!(before.decrypt(&new, &context).is_err());

    // A malformed list is refused by position, never echoed.
    let text = problems(env(&[
        ("ENCRYPTION_KEY", OTHER_KEY),
        ("ENCRYPTION_PREVIOUS_KEYS", &format!("k1:{KEY},{KEY}")),
    ]));
    assert!(
        text.contains("ENCRYPTION_PREVIOUS_KEYS") && text.contains("entry 2"),
        "{text}"
    );
    assert!(!text.contains(KEY), "{text}");
}
