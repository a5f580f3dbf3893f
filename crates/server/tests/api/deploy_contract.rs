//! The container contract of `deploy/`, checked without a container engine: the environment the
//! Dockerfile, `compose.yaml` and the Kubernetes ConfigMap + Secret give the service uses only
//! settings the binary knows, and the binary started with exactly that environment (hosts
//! swapped for test ones) comes up: `/livez` answers 200 (and `/readyz`, with Redis, too).
//! The files are read line by line (no YAML parser in the lock file); they keep the simple
//! block layout this test reads.

use crate::helpers::{Portal, start_portal, start_sandbox};
use portal_redis::RedisServer;
use portal_server::Settings;
use std::collections::BTreeMap;
use std::path::PathBuf;

type Env = BTreeMap<String, String>;

fn deploy_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    let v = v.split(" #").next().unwrap_or(v).trim();
    v.trim_matches('"').trim_matches('\'').to_owned()
}

/// `KEY: value` lines indented under the line `header` (until the indentation drops back).
fn block(text: &str, header: &str) -> Env {
    let mut lines = text.lines().skip_while(|l| l.trim_end() != header);
    let header_line = lines
        .next()
        .unwrap_or_else(|| panic!("no `{header}` block"));
    let header_indent = header_line.len() - header_line.trim_start().len();
    let mut env = Env::new();
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent <= header_indent {
            break;
        }
        let (k, v) = trimmed.split_once(':').expect("KEY: value");
        env.insert(k.trim().to_owned(), unquote(v));
    }
    env
}

/// The Dockerfile's runtime `ENV` and `ENTRYPOINT`.
fn dockerfile() -> (Env, String) {
    let text = deploy_file("Dockerfile");
    let runtime = text
        .split("\nFROM ")
        .last()
        .expect("a runtime stage")
        .to_owned();
    let mut env = Env::new();
    let mut entrypoint = None;
    for line in runtime.lines() {
        if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV KEY=value");
                env.insert(k.to_owned(), unquote(v));
            }
        }
        if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            let args: Vec<String> = serde_json::from_str(rest).expect("exec-form ENTRYPOINT");
            entrypoint = args.first().cloned();
        }
    }
    (env, entrypoint.expect("an ENTRYPOINT"))
}

/// Variables read by something other than `Settings`: the telemetry exporter's standard
/// `OTEL_*` variables and tracing's `RUST_LOG`.
fn read_elsewhere(name: &str) -> bool {
    name.starts_with("OTEL_") || name == "RUST_LOG"
}

fn assert_all_known(source: &str, env: &Env) {
    let known = Settings::variables();
    let unknown: Vec<&String> = env
        .keys()
        .filter(|k| !known.contains(k) && !read_elsewhere(k))
        .collect();
    assert!(
        unknown.is_empty(),
        "{source} sets variables the service does not read: {unknown:?}"
    );
}

/// Runs the binary the ENTRYPOINT names with exactly `env` (PORT forced to 0); returns it and
/// its port.
fn run(entrypoint: &str, env: &Env) -> (Portal, u16) {
    assert_eq!(
        entrypoint, "/usr/local/bin/agent-portal",
        "the image runs the agent-portal binary"
    );
    let portal = start_portal(env);
    let port = portal.port;
    (portal, port)
}

async fn get(port: u16, path: &str) -> u16 {
    reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom(&mut bytes);
    hex::encode(bytes)
}

fn getrandom(buf: &mut [u8]) {
    use portal_domain::ports::system::Random;
    portal_crypto::SystemRandom::new().fill(buf);
}

#[test]
fn the_image_runs_unprivileged_and_checks_the_port_it_serves() {
    let text = deploy_file("Dockerfile");
    let runtime = text.split("\nFROM ").last().unwrap();
    let (env, _) = dockerfile();
    let port = &env["PORT"];
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER in the runtime stage");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric uid");
    assert_ne!(uid, 0, "the runtime user is not root");
    assert!(
        runtime.contains(&format!("EXPOSE {port}")),
        "EXPOSE matches PORT {port}"
    );
    assert!(
        runtime.contains(&format!("http://127.0.0.1:{port}/livez")),
        "the HEALTHCHECK probes /livez on PORT {port}"
    );
    assert_eq!(
        env["HOST"], "0.0.0.0",
        "reachable from outside the container"
    );
    assert_eq!(
        env["PORTAL_ENV"], "production",
        "the image is strict by default"
    );
}

#[tokio::test]
async fn compose_environment_is_known_and_starts_the_service() {
    let (image_env, entrypoint) = dockerfile();
    let compose = deploy_file("compose.yaml");
    let mut portal_env = block(&compose, "x-portal-env: &portal-env");
    assert_all_known("Dockerfile ENV", &image_env);
    assert_all_known("compose.yaml x-portal-env", &portal_env);
    // One block per Redis topology, each naming exactly one (issue 12).
    for (anchor, setting) in [
        ("x-redis-single: &redis-single", "REDIS_URL"),
        ("x-redis-sentinel: &redis-sentinel", "REDIS_SENTINELS"),
        ("x-redis-cluster: &redis-cluster", "REDIS_CLUSTER_NODES"),
    ] {
        let redis = block(&compose, anchor);
        assert!(redis.contains_key(setting), "{anchor}: {redis:?}");
        assert_all_known(anchor, &redis);
        let mut merged = portal_env.clone();
        merged.extend(redis);
        merged.insert("ENCRYPTION_KEY".into(), random_hex());
        merged.insert("COOKIE_SECRET".into(), random_hex());
        merged.insert("AUDIT_HMAC_KEY".into(), random_hex());
        if let Err(e) = Settings::load_from(Some(merged.into_iter().collect())) {
            panic!("{anchor} with x-portal-env is refused: {e}");
        }
    }
    portal_env.extend(block(&compose, "x-redis-single: &redis-single"));

    // The image's environment, overridden by compose's; hosts swapped for test ones.
    let redis = RedisServer::start().await;
    let sandbox = start_sandbox();
    let mut env = image_env;
    for (k, v) in portal_env {
        let v = v
            .replace("http://sandbox:9090", &sandbox)
            .replace("http://localhost:9090", &sandbox)
            .replace("http://otel-collector:4318", "http://127.0.0.1:1");
        env.insert(k, v);
    }
    env.insert("REDIS_URL".into(), redis.url());
    env.insert("ENCRYPTION_KEY".into(), random_hex());
    env.insert("COOKIE_SECRET".into(), random_hex());
    env.insert("AUDIT_HMAC_KEY".into(), random_hex());
    env.insert("HOST".into(), "127.0.0.1".into());
    for (k, v) in &env {
        assert!(!v.contains("${"), "{k} left unsubstituted: {v}");
    }

    let (_portal, port) = run(&entrypoint, &env);
    assert_eq!(get(port, "/livez").await, 200);
    assert_eq!(get(port, "/readyz").await, 200, "ready with Redis up");
}

#[tokio::test]
async fn kubernetes_configmap_and_secret_satisfy_the_production_profile() {
    let (image_env, entrypoint) = dockerfile();
    let configmap = block(&deploy_file("k8s/configmap.yaml"), "data:");
    let secret = block(&deploy_file("k8s/secret.example.yaml"), "stringData:");
    assert_eq!(configmap["PORTAL_ENV"], "production");
    assert_all_known("k8s ConfigMap", &configmap);
    assert_all_known("k8s Secret", &secret);
    for key in secret.keys() {
        assert!(
            !configmap.contains_key(key),
            "{key} is in both the ConfigMap and the Secret"
        );
    }
    for secret_setting in [
        "ENCRYPTION_KEY",
        "COOKIE_SECRET",
        "AUDIT_HMAC_KEY",
        "REDIS_PASSWORD",
    ] {
        assert!(
            !configmap.contains_key(secret_setting),
            "{secret_setting} in a ConfigMap"
        );
    }

    // The Deployment reads both, probes the port the ConfigMap binds, and gives the drain
    // (preStop + SHUTDOWN_GRACE_SECONDS) time before SIGKILL.
    let deployment = deploy_file("k8s/deployment.yaml");
    assert!(deployment.contains("configMapRef: { name: agent-portal-config }"));
    assert!(deployment.contains("secretRef: { name: agent-portal-secrets }"));
    assert!(deployment.contains(&format!("containerPort: {}", configmap["PORT"])));
    for probe in ["path: /livez", "path: /readyz"] {
        assert!(deployment.contains(probe), "{probe}");
    }
    let number_after = |text: &str, key: &str| -> u64 {
        let rest = &text[text.find(key).unwrap_or_else(|| panic!("{key}")) + key.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let termination = number_after(&deployment, "terminationGracePeriodSeconds:");
    let pre_stop = number_after(&deployment, "sleep: { seconds:");
    let grace: u64 = configmap["SHUTDOWN_GRACE_SECONDS"].parse().unwrap();
    assert!(
        termination > pre_stop + grace,
        "terminationGracePeriodSeconds {termination} <= preStop {pre_stop} + grace {grace}"
    );

    // Image ENV < ConfigMap < Secret; hosts swapped for test ones, secrets generated. Redis is
    // what the ConfigMap describes: Sentinels, TLS with required client certificates, ACL
    // users (the harness's user and files in place of the cluster's).
    let tls = std::sync::Arc::new(portal_redis::TlsFiles::generate());
    let redis = portal_redis::RedisSentinel::start(portal_redis::Security::tls(tls.clone())).await;
    let mut env = image_env;
    env.extend(configmap);
    env.extend(secret);
    for name in [
        "AUTH_SERVICE_URL",
        "TENANT_SERVICE_URL",
        "STATE_MANAGER_URL",
    ] {
        env.insert(name.into(), "http://127.0.0.1:1".into());
    }
    env.insert(
        "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        "http://127.0.0.1:1".into(),
    );
    assert!(env.contains_key("REDIS_SENTINELS") && env["REDIS_TLS"] == "true");
    env.insert("REDIS_SENTINELS".into(), redis.sentinels().join(","));
    env.insert(
        "REDIS_SENTINEL_MASTER".into(),
        portal_redis::SENTINEL_MASTER.into(),
    );
    for user in ["REDIS_USERNAME", "REDIS_SENTINEL_USERNAME"] {
        env.insert(user.into(), portal_redis::ACL_USER.into());
    }
    for password in ["REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD"] {
        env.insert(password.into(), portal_redis::ACL_PASSWORD.into());
    }
    let (cert, key) = tls.client();
    env.insert("REDIS_CA_FILE".into(), tls.ca().display().to_string());
    env.insert("REDIS_CLIENT_CERT_FILE".into(), cert.display().to_string());
    env.insert("REDIS_CLIENT_KEY_FILE".into(), key.display().to_string());
    env.insert("ENCRYPTION_KEY".into(), random_hex());
    env.insert("COOKIE_SECRET".into(), random_hex());
    env.insert("AUDIT_HMAC_KEY".into(), random_hex());
    env.insert("GENESYS_CLIENT_ID".into(), "portal-client".into());
    // The exact environment must pass the production profile...
    let settings = Settings::load_from(Some(env.clone().into_iter().collect()))
        .unwrap_or_else(|e| panic!("the k8s environment is refused: {e}"));
    assert!(settings.is_production());

    // ...and start the service.
    let (_portal, port) = run(&entrypoint, &env);
    assert_eq!(get(port, "/livez").await, 200);
    assert_eq!(get(port, "/readyz").await, 200, "ready with Redis up");
}

#[test]
fn every_setting_is_documented_in_the_configuration_reference() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let missing: Vec<String> = Settings::variables()
        .into_iter()
        .filter(|name| !doc.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks a row for: {missing:?}"
    );
}
