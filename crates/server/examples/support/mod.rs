//! What the HTTP benchmarks share: settings from the environment, percentiles, the sign-in
//! through the real redirect chain, and the closed-loop load generator.

#![allow(dead_code)] // each benchmark uses part of it

use reqwest::{Client, StatusCode, header};
use std::time::{Duration, Instant};

/// `name` from the environment, or `default`.
pub(crate) fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` percentile (0..=1) of `sorted`.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `d` in milliseconds, for printing.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Signs in through the real redirect chain; returns the `Cookie` header value.
pub(crate) async fn sign_in(base: &str, email: &str) -> String {
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let res = client
        .get(format!("{base}/api/v1/auth/login?login_hint={email}"))
        .send()
        .await
        .unwrap();
    let authorize = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let res = client.get(authorize).send().await.unwrap();
    let callback = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let res = client.get(callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND, "sign-in");
    let set_cookie = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("sessionId="))
        .expect("a session cookie");
    set_cookie.split(';').next().unwrap().to_owned()
}

/// A client keeping up to `connections` idle connections.
pub(crate) fn client(connections: usize) -> Client {
    Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap()
}

/// One GET with the session cookie; anything but 200 aborts the benchmark.
pub(crate) async fn get(client: &Client, url: &str, cookie: &str) {
    let res = client
        .get(url)
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.bytes().await.unwrap();
}

/// Closed loop: each connection sends its next request when the previous one is answered.
/// Returns requests/s and the sorted latencies.
pub(crate) async fn max_rate(
    url: &str,
    cookie: &str,
    connections: usize,
    secs: u64,
) -> (f64, Vec<Duration>) {
    let client = client(connections);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, cookie) = (client.clone(), url.to_owned(), cookie.to_owned());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(100_000);
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    get(&client, &url, &cookie).await;
                    lat.push(t0.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / elapsed, all)
}
