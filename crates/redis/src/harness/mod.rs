//! Throw-away Redis deployments for tests (feature `test-harness`): [`RedisServer`] (one
//! node), [`RedisCluster`] (3 masters, optionally a replica each), [`RedisSentinel`] (master,
//! replica, Sentinel) and [`TlsFiles`] (a CA, server and client certificates made with the
//! `openssl` command, for TLS with required client certificates), so CI needs only
//! `redis-server`, `redis-cli` and `openssl`.
//!
//! Every server starts on a free port with no persistence configured (`--save ""
//! --appendonly no`) in a private temporary directory. [`RedisServer::stop`] is a graceful
//! `SHUTDOWN SAVE`, which writes the dataset to that directory, and [`RedisServer::restart`]
//! starts again on the same port and directory and loads it: an outage that loses no data,
//! like restarting a persistent production Redis. [`RedisServer::kill`] is the crash (SIGKILL,
//! data lost).
//!
//! Each `redis-server` runs under a small `sh` watchdog that kills it when the test process
//! goes (its standard input closes), so deployments shared by a whole test binary (held in
//! statics, never dropped: [`RedisCluster::shared`]) leave no process behind.
//!
//! # Layout
//! - here: what the deployments share (free ports, temporary directories, `redis-cli`,
//!   waiting for a condition) and [`settings_for`];
//! - `tls`: [`TlsFiles`] and [`Security`] (plain, or TLS with an ACL user and client
//!   certificates);
//! - `server`: [`RedisServer`] and the watchdog'd process under it;
//! - `cluster`: [`RedisCluster`]; `sentinel`: [`RedisSentinel`];
//! - `counters`: [`RedisCounters`], `INFO` counters over kept-open connections.

mod cluster;
mod counters;
mod sentinel;
mod server;
mod tls;

pub use cluster::RedisCluster;
pub use counters::RedisCounters;
pub use sentinel::RedisSentinel;
pub use server::RedisServer;
pub use tls::{Security, TlsFiles};

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for a server to answer or to exit.
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);
/// The ACL user the TLS deployments require (and its password).
pub const ACL_USER: &str = "portal";
/// Password of [`ACL_USER`].
pub const ACL_PASSWORD: &str = "portal-test-password";
/// The master's name in [`RedisSentinel`]'s Sentinel.
pub const SENTINEL_MASTER: &str = "portal-master";

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("test harness: no free local port: {e}"),
    }
}

/// A path as a command-line argument.
fn path(p: &Path) -> String {
    p.display().to_string()
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portal-{what}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("test harness: cannot create {}: {e}", dir.display());
    }
    dir
}

/// Runs `redis-cli` with `args`; its standard output.
fn redis_cli(security: &Security, args: &[String]) -> String {
    let out = Command::new("redis-cli")
        .args(security.cli_args())
        .args(args)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => panic!(
            "test harness: redis-cli {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            panic!("test harness: cannot run `redis-cli` ({e}); install redis-server's tools")
        }
    }
}

async fn query<T: redis::FromRedisValue>(server: &RedisServer, cmd: &redis::Cmd) -> Option<T> {
    let mut conn = tokio::time::timeout(
        Duration::from_secs(1),
        server.client().get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()?;
    tokio::time::timeout(Duration::from_secs(1), cmd.query_async(&mut conn))
        .await
        .ok()?
        .ok()
}

/// Whether every replica of `master` has applied everything `master` has written.
async fn replicated(master: &RedisServer) -> bool {
    let Some(info) = query::<String>(master, redis::cmd("INFO").arg("replication")).await else {
        return false;
    };
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    let Some(offset) = field("master_repl_offset:") else {
        return false;
    };
    let replicas: Vec<&str> = info.lines().filter(|l| l.starts_with("slave")).collect();
    !replicas.is_empty()
        && replicas
            .iter()
            .all(|l| l.contains("state=online") && l.contains(&format!("offset={offset},")))
}

/// Polls `cond` until it holds (panics after `within`).
async fn eventually<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "test harness: {what} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Builds connection settings for a harness deployment (credentials and certificates when
/// secured), for the stores under test.
pub fn settings_for(security: &Security, topology: crate::Topology) -> crate::RedisSettings {
    let mut settings =
        crate::RedisSettings::new(portal_domain::secret::SecretString::from(String::new()));
    settings.topology = topology;
    if let Some(files) = security.files() {
        settings.tls = true;
        settings.username = Some(ACL_USER.into());
        settings.password = Some(portal_domain::secret::SecretString::from(
            ACL_PASSWORD.to_owned(),
        ));
        settings.sentinel_username = Some(ACL_USER.into());
        settings.sentinel_password = Some(portal_domain::secret::SecretString::from(
            ACL_PASSWORD.to_owned(),
        ));
        settings.ca_file = Some(files.ca());
        let (cert, key) = files.client();
        settings.client_cert_file = Some(cert);
        settings.client_key_file = Some(key);
    }
    settings
}
