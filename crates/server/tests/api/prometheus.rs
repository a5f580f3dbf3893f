//! `/metrics` as Prometheus's own tools read it, on an instance that has served sign-ins,
//! reads, downstream calls, a refusal and a WebSocket (so every family has samples): the text
//! format passes `promtool check metrics`, and a real Prometheus server scrapes the
//! OpenMetrics answer it negotiates without error. Both tools come with Debian's `prometheus`
//! package (`scripts/test.sh` installs it).

use crate::helpers::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The `Accept` header Prometheus 2.x scrapes with.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn tool(name: &str) -> String {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed: it comes with Debian's `prometheus` package, which \
         `bash scripts/test.sh` installs"
    );
    name.to_owned()
}

/// An instance after some traffic: sign-in, cached and uncached reads (downstream calls),
/// an open WebSocket. (Series whose label values are known, such as refusals by scope, are
/// exported at zero from the start.)
async fn busy_app() -> TestApp {
    let app = spawn_app().await;
    let user = app.signed_in("agent@acme.example").await;
    for path in [
        "/api/v1/dashboard/stats",
        "/api/v1/dashboard/stats",
        "/api/v1/history/threads?page=1&limit=5",
    ] {
        let res = user.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let _ws = app.connect(&user, acme()).await;
    app
}

async fn scrape(app: &TestApp, accept: Option<&str>) -> (String, String) {
    let mut req = reqwest::Client::new().get(app.url("/metrics"));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    (ct, res.text().await.unwrap())
}

#[tokio::test]
async fn the_text_format_passes_promtool_check_metrics() {
    let promtool = tool("promtool");
    let app = busy_app().await;
    let (ct, text) = scrape(&app, None).await;
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    for family in [
        "portal_api_latency_seconds",
        "portal_cache_hits_total",
        "portal_onboarding_completions_total",
        "portal_downstream_request_duration_seconds",
        "portal_circuit_state",
        "portal_rate_limited_total",
        "portal_websocket_connections",
        "portal_active_sessions_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} is exported: {text}"
        );
    }

    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics exited {:?}:\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn prometheus_scrapes_the_openmetrics_answer() {
    let prometheus = tool("prometheus");
    let app = busy_app().await;
    let (ct, text) = scrape(&app, Some(PROMETHEUS_ACCEPT)).await;
    assert!(
        ct.starts_with("application/openmetrics-text; version=1.0.0"),
        "{ct}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");

    let dir = std::env::temp_dir().join(format!("portal-prometheus-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: portal\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            app.port
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = tokio::process::Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Prometheus applies new targets every 5 s, then scrapes every second.
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let client = reqwest::Client::new();
    let mut target = Value::Null;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Ok(res) = client.get(format!("{api}/targets")).send().await else {
            continue;
        };
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if let Some(t) = body["data"]["activeTargets"].get(0)
            && t["lastScrape"] != "0001-01-01T00:00:00Z"
            && t["health"] != "unknown"
        {
            target = t.clone();
            break;
        }
    }
    assert_eq!(target["health"], "up", "the scrape failed: {target}");
    assert_eq!(target["lastError"], "", "{target}");
    let res: Value = client
        .get(format!("{api}/query"))
        .query(&[("query", "portal_api_latency_seconds_count")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !res["data"]["result"].as_array().unwrap().is_empty(),
        "the samples were stored: {res}"
    );
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}
