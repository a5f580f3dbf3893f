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

/// Builds and runs the service on its own tokio runtime, on threads named `portal-server`
/// (actix's own threads are `actix-server …`), so that [`server_cpu_ticks`] can tell the
/// service's CPU from the load generator's, which shares the process. Returns its port.
pub(crate) async fn spawn_server<F, Fut>(build: F) -> anyhow::Result<u16>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<portal_server::Application>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("portal-server".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("portal-server")
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                match build().await {
                    Ok(app) => {
                        let _ = tx.send(Ok(app.port()));
                        let _ = app.run_until_stopped().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
    rx.await?
}

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`, 100 on Linux).
pub(crate) fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `utime + stime` of the service's threads (see [`spawn_server`]), in clock ticks, from
/// `/proc/self/task/*/stat`.
pub(crate) fn server_cpu_ticks() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            let comm = stat.rsplit_once(')')?.0.split_once('(')?.1;
            if !(comm.starts_with("portal-server") || comm.starts_with("actix")) {
                return None;
            }
            stat_cpu_ticks(&stat)
        })
        .sum()
}

/// `utime + stime` of one `/proc/<pid>/stat` (or task `stat`) line, in clock ticks.
pub(crate) fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // `pid (comm) state ...`: the name may hold spaces, so split at its parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// One closed-loop run of `url` measured with the service's CPU: req/s, sorted latencies
/// and server CPU µs per request.
pub(crate) async fn measured_rate(
    url: &str,
    cookie: &str,
    connections: usize,
    secs: u64,
) -> (f64, Vec<Duration>, f64) {
    let before = server_cpu_ticks();
    let (rate, lat) = max_rate(url, cookie, connections, secs).await;
    let ticks = server_cpu_ticks() - before;
    let per_request = ticks as f64 / clock_ticks() / lat.len().max(1) as f64 * 1e6;
    (rate, lat, per_request)
}

/// Prints the `/livez` floor of the same service next to a measured request's server CPU.
pub(crate) async fn print_floor(base: &str, cookie: &str, connections: usize, secs: u64, cpu: f64) {
    let (rate, lat, floor) =
        measured_rate(&format!("{base}/livez"), cookie, connections, secs).await;
    println!(
        "    /livez floor:         {rate:.0} requests/s, p99 {}, server CPU {floor:.1} µs per request → this request costs {:.2}× the floor",
        ms(percentile(&lat, 0.99)),
        cpu / floor
    );
}
