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

/// A throw-away CA, a server certificate (for `127.0.0.1` and `localhost`) and a client
/// certificate, all PEM, made with the `openssl` command. Removed on drop.
#[derive(Debug)]
pub struct TlsFiles {
    dir: PathBuf,
}

impl TlsFiles {
    /// Generates the files (EC P-256, valid two days).
    ///
    /// # Panics
    /// If `openssl` is missing or fails: tests never skip silently.
    pub fn generate() -> Self {
        let dir = temp_dir("tls");
        let ext = dir.join("leaf.ext");
        let written = std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        );
        assert!(
            written.is_ok(),
            "test harness: cannot write {}",
            ext.display()
        );
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => panic!(
                    "test harness: openssl {args:?} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => panic!("test harness: cannot run `openssl` ({e}); install it"),
            }
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=portal-test-ca",
        ]);
        run(&ca);
        for name in ["server", "client"] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let crt = format!("{name}.crt");
            let subj = format!("/CN=portal-test-{name}");
            let mut req = vec!["req"];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            run(&req);
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
            ]);
        }
        Self { dir }
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    /// The server certificate and key.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("server.crt"), self.dir.join("server.key"))
    }
    /// The client certificate and key.
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("client.crt"), self.dir.join("client.key"))
    }

    /// The certificates as the `redis` crate takes them (CA + client certificate).
    pub fn certificates(&self) -> redis::TlsCertificates {
        let read = |p: PathBuf| match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) => panic!("test harness: cannot read {}: {e}", p.display()),
        };
        let (cert, key) = self.client();
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: read(cert),
                client_key: read(key),
            }),
            root_cert: Some(read(self.ca())),
        }
    }

    /// `redis-server` arguments: TLS only (no plain port), client certificates required, TLS
    /// for replication and the cluster bus.
    fn server_args(&self, port: u16) -> Vec<String> {
        let (cert, key) = self.server();
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path(&cert),
            "--tls-key-file",
            &path(&key),
            "--tls-ca-cert-file",
            &path(&self.ca()),
            "--tls-auth-clients",
            "yes",
            "--tls-replication",
            "yes",
            "--tls-cluster",
            "yes",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// `redis-cli` arguments for TLS with the client certificate.
    fn cli_args(&self) -> Vec<String> {
        let (cert, key) = self.client();
        vec![
            "--tls".into(),
            "--cacert".into(),
            path(&self.ca()),
            "--cert".into(),
            path(&cert),
            "--key".into(),
            path(&key),
        ]
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        drop(std::fs::remove_dir_all(&self.dir));
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// How a server is secured: nothing (the default), or TLS with required client certificates
/// and an ACL user ([`ACL_USER`]) whose password is required (the default user is disabled).
#[derive(Debug, Clone, Default)]
pub struct Security {
    tls: Option<std::sync::Arc<TlsFiles>>,
}

impl Security {
    /// TLS + client certificates + ACL user, with `files`.
    pub fn tls(files: std::sync::Arc<TlsFiles>) -> Self {
        Self { tls: Some(files) }
    }

    /// The TLS files, if any.
    pub fn files(&self) -> Option<&TlsFiles> {
        self.tls.as_deref()
    }

    fn server_args(&self, port: u16, sentinel: bool) -> Vec<String> {
        match &self.tls {
            None => vec!["--port".into(), port.to_string()],
            Some(files) => {
                let mut args = files.server_args(port);
                let password = format!(">{ACL_PASSWORD}");
                args.extend(
                    [
                        "--user", "default", "off", "--user", ACL_USER, "on", &password, "~*",
                        "&*", "+@all",
                    ]
                    .iter()
                    .map(|s| (*s).to_owned()),
                );
                if !sentinel {
                    args.extend(
                        ["--masteruser", ACL_USER, "--masterauth", ACL_PASSWORD]
                            .iter()
                            .map(|s| (*s).to_owned()),
                    );
                }
                args
            }
        }
    }

    fn cli_args(&self) -> Vec<String> {
        match &self.tls {
            None => Vec::new(),
            Some(files) => {
                let mut args = files.cli_args();
                args.extend([
                    "--user".into(),
                    ACL_USER.into(),
                    "--pass".into(),
                    ACL_PASSWORD.into(),
                ]);
                args.push("--no-auth-warning".into());
                args
            }
        }
    }

    /// A client for `127.0.0.1:port` with these credentials.
    fn client(&self, port: u16) -> redis::Client {
        let client = match &self.tls {
            None => redis::Client::open(format!("redis://127.0.0.1:{port}/0")),
            Some(files) => redis::Client::build_with_tls(
                format!("rediss://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{port}/0"),
                files.certificates(),
            ),
        };
        match client {
            Ok(c) => c,
            Err(e) => panic!("test harness: bad client settings: {e}"),
        }
    }
}

/// One `redis-server` process (under its watchdog).
#[derive(Debug)]
struct Process {
    /// The watchdog shell; closing its stdin makes it kill the server.
    watchdog: Child,
    stdin: Option<ChildStdin>,
    /// The `redis-server` process id (for signals).
    pid: u32,
}

impl Process {
    fn spawn(args: &[String]) -> Self {
        // The watchdog: start the server, print its pid, wait for our stdin to close (we are
        // done, or gone), then make sure the server is gone too.
        let script = r#"redis-server "$@" >/dev/null 2>&1 &
pid=$!
echo $pid
read _ignored
kill -CONT $pid 2>/dev/null
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
exit 0"#;
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut watchdog = match spawned {
            Ok(c) => c,
            Err(e) => panic!("test harness: cannot run sh: {e}"),
        };
        let mut line = String::new();
        if let Some(out) = watchdog.stdout.take() {
            drop(BufReader::new(out).read_line(&mut line));
        }
        let pid = match line.trim().parse() {
            Ok(p) => p,
            Err(_) => panic!("test harness: redis-server did not start"),
        };
        let stdin = watchdog.stdin.take();
        Self {
            watchdog,
            stdin,
            pid,
        }
    }

    /// Whether the server has exited (gone, or a zombie awaiting the watchdog).
    fn exited(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
            Err(_) => true,
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(sig)
            .arg(self.pid.to_string())
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()) || self.exited(),
            "test harness: kill {sig} failed"
        );
    }

    /// Kills the server now (SIGKILL) and reaps the watchdog.
    fn kill(mut self) {
        if !self.exited() {
            drop(
                Command::new("kill")
                    .arg("-CONT")
                    .arg(self.pid.to_string())
                    .status(),
            );
            drop(
                Command::new("kill")
                    .arg("-9")
                    .arg(self.pid.to_string())
                    .status(),
            );
        }
        self.finish();
    }

    /// Lets the watchdog end (the server is already gone or is killed by it) and reaps it.
    fn finish(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            drop(stdin.write_all(b"\n"));
        }
        drop(self.watchdog.wait());
    }

    /// `redis-server`'s CPU time so far (user + system), from `/proc/<pid>/stat`.
    fn cpu_ticks(&self) -> u64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return 0;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            return 0;
        };
        // Fields after the command name: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = rest.split(' ').collect();
        let at = |i: usize| {
            fields
                .get(i - 3)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        at(14) + at(15)
    }
}

/// A `redis-server` (or Sentinel) process, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    /// Working directory (`dump.rdb`, `nodes.conf`, `sentinel.conf`), removed on drop.
    dir: PathBuf,
    /// Extra arguments (cluster mode, replication, ...), kept for restarts.
    extra: Vec<String>,
    security: Security,
    sentinel: bool,
    process: Option<Process>,
}

impl RedisServer {
    /// Launches a plain `redis-server` and waits until it answers `PING`.
    ///
    /// # Panics
    /// If `redis-server` is not installed or does not come up: tests never skip silently.
    pub async fn start() -> Self {
        Self::start_with(Security::default(), Vec::new()).await
    }

    /// Launches a `redis-server` with `security` and `extra` arguments.
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    pub async fn start_with(security: Security, extra: Vec<String>) -> Self {
        let mut server = Self::prepare(security, extra, false);
        server.spawn().await;
        server
    }

    fn prepare(security: Security, extra: Vec<String>, sentinel: bool) -> Self {
        let port = free_port();
        Self {
            port,
            dir: temp_dir(&format!("redis-{port}")),
            extra,
            security,
            sentinel,
            process: None,
        }
    }

    /// `redis://127.0.0.1:<port>/0` (`rediss://` with the ACL user when secured).
    pub fn url(&self) -> String {
        match self.security.tls {
            None => format!("redis://127.0.0.1:{}/0", self.port),
            Some(_) => format!(
                "rediss://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{}/0",
                self.port
            ),
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port, stable across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A client with the server's credentials and certificates.
    pub fn client(&self) -> redis::Client {
        self.security.client(self.port)
    }

    /// A multiplexed connection to this server.
    ///
    /// # Panics
    /// If the server does not answer.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        match self.client().get_multiplexed_async_connection().await {
            Ok(c) => c,
            Err(e) => panic!("test harness: cannot connect to {}: {e}", self.address()),
        }
    }

    async fn spawn(&mut self) {
        let mut args = Vec::new();
        if self.sentinel {
            args.push(path(&self.dir.join("sentinel.conf")));
            args.push("--sentinel".into());
        }
        args.extend(self.security.server_args(self.port, self.sentinel));
        args.extend([
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            path(&self.dir),
        ]);
        if !self.sentinel {
            args.extend(
                ["--save", "", "--appendonly", "no"]
                    .iter()
                    .map(|s| (*s).to_owned()),
            );
        }
        args.extend(self.extra.iter().cloned());
        self.process = Some(Process::spawn(&args));
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        let client = self.client();
        loop {
            if let Ok(Ok(mut conn)) = tokio::time::timeout(
                Duration::from_secs(1),
                client.get_multiplexed_async_connection(),
            )
            .await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            if self.process.as_ref().is_some_and(Process::exited) {
                panic!("test harness: redis-server exited at start-up (args or port in use?)");
            }
            assert!(
                Instant::now() < deadline,
                "test harness: redis-server did not answer PING within {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_exit(&mut self) {
        let deadline = Instant::now() + WAIT;
        while let Some(p) = self.process.as_ref() {
            if p.exited() {
                if let Some(mut p) = self.process.take() {
                    p.finish();
                }
            } else if Instant::now() >= deadline {
                self.kill_now();
            } else {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    fn kill_now(&mut self) {
        if let Some(p) = self.process.take() {
            p.kill();
        }
    }

    /// Graceful stop that keeps the data (`SHUTDOWN SAVE`); falls back to a kill.
    pub async fn stop(&mut self) {
        if self.process.is_none() {
            return;
        }
        if let Ok(Ok(mut conn)) = tokio::time::timeout(
            Duration::from_secs(2),
            self.client().get_multiplexed_async_connection(),
        )
        .await
        {
            // The server closes the connection instead of answering: the error is expected.
            let mut cmd = redis::cmd("SHUTDOWN");
            if !self.sentinel {
                cmd.arg("SAVE");
            }
            drop(
                tokio::time::timeout(Duration::from_secs(5), cmd.query_async::<()>(&mut conn))
                    .await,
            );
        }
        self.wait_exit().await;
    }

    /// Crash: SIGKILL, nothing saved since the last stop.
    pub fn kill(&mut self) {
        self.kill_now();
    }

    /// Starts again on the same port and directory (loading what [`stop`](Self::stop) saved).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// Starts a stopped or killed server again (same port and directory).
    pub async fn start_again(&mut self) {
        if self.process.is_none() {
            self.spawn().await;
        }
    }

    /// Hangs the server (SIGSTOP): connections stay open but nothing answers, like a stuck or
    /// partitioned Redis. Undo with [`thaw`](Self::thaw).
    pub fn freeze(&self) {
        if let Some(p) = &self.process {
            p.signal("-STOP");
        }
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) {
        if let Some(p) = &self.process {
            p.signal("-CONT");
        }
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// CPU time the server has used (user + system), in clock ticks (`/proc/<pid>/stat`).
    pub fn cpu_ticks(&self) -> u64 {
        self.process.as_ref().map_or(0, Process::cpu_ticks)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill_now();
        drop(std::fs::remove_dir_all(&self.dir));
    }
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

/// A Redis Cluster of three masters (and, optionally, one replica each), made with
/// `redis-cli --cluster create`; a node is declared failed after 1 s (`cluster-node-timeout`).
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    security: Security,
}

/// The shared cluster of a test binary.
static SHARED: tokio::sync::OnceCell<RedisCluster> = tokio::sync::OnceCell::const_new();
/// The shared Sentinel deployment of a test binary.
static SHARED_SENTINEL: tokio::sync::OnceCell<RedisSentinel> = tokio::sync::OnceCell::const_new();

impl RedisCluster {
    /// Starts three masters, with a replica each when `replicas`.
    ///
    /// # Panics
    /// If the servers or `redis-cli` fail.
    pub async fn start(replicas: bool, security: Security) -> Self {
        let count = if replicas { 6 } else { 3 };
        let extra: Vec<String> = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "1000",
            "--cluster-replica-validity-factor",
            "0",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Each node's cluster bus on a port of its own: by default Redis takes port + 10,000,
        // which may be taken by another process, or past 65,535 for a port above 55,535 (the
        // ephemeral range here runs to 60,999): the cluster then never becomes healthy.
        let starts = (0..count).map(|_| {
            let mut extra = extra.clone();
            extra.extend(["--cluster-port".to_owned(), free_port().to_string()]);
            RedisServer::start_with(security.clone(), extra)
        });
        let nodes = futures::future::join_all(starts).await;
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(nodes.iter().map(RedisServer::address));
        args.extend([
            "--cluster-replicas".into(),
            (if replicas { "1" } else { "0" }).into(),
        ]);
        args.push("--cluster-yes".into());
        let sec = security.clone();
        let created = tokio::task::spawn_blocking(move || redis_cli(&sec, &args)).await;
        assert!(
            created.is_ok(),
            "test harness: redis-cli --cluster create panicked"
        );
        let cluster = Self { nodes, security };
        cluster.wait_healthy().await;
        cluster
    }

    /// One 3-master cluster (no replicas) shared by every test of the binary that does not
    /// kill nodes; its processes end with the test process.
    pub async fn shared() -> &'static Self {
        SHARED
            .get_or_init(|| Self::start(false, Security::default()))
            .await
    }

    /// Waits until every node says `cluster_state:ok`, knows every other node and every
    /// replica is in sync with its master.
    pub async fn wait_healthy(&self) {
        let count = self.running().count();
        eventually("cluster is healthy", WAIT, || async {
            for node in self.running() {
                let Some(info) = query::<String>(node, redis::cmd("CLUSTER").arg("INFO")).await
                else {
                    return false;
                };
                let ok = info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{}", self.nodes.len()))
                    && info.contains("cluster_slots_assigned:16384");
                if !ok {
                    return false;
                }
                let Some(repl) = query::<String>(node, redis::cmd("INFO").arg("replication")).await
                else {
                    return false;
                };
                if repl.contains("role:slave") && !repl.contains("master_link_status:up") {
                    return false;
                }
            }
            count > 0
        })
        .await;
    }

    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// Seed nodes for `REDIS_CLUSTER_NODES` (`127.0.0.1:<port>`, all of them).
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::address).collect()
    }

    /// `REDIS_CLUSTER_NODES` as one comma-separated value.
    pub fn seeds_setting(&self) -> String {
        self.seeds().join(",")
    }

    /// Every node (masters and replicas), for counters.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The security the nodes use.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// The hash slot of `key` (asked of a node).
    ///
    /// # Panics
    /// If no node answers.
    pub async fn slot_of(&self, key: &str) -> u16 {
        for node in self.running() {
            if let Some(slot) =
                query::<u16>(node, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).await
            {
                return slot;
            }
        }
        panic!("test harness: no node answered CLUSTER KEYSLOT");
    }

    /// Index (in [`nodes`](Self::nodes)) of the running master serving `slot`.
    ///
    /// # Panics
    /// If none does.
    pub async fn master_of(&self, slot: u16) -> usize {
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_running() {
                continue;
            }
            let Some(repl) = query::<String>(node, redis::cmd("INFO").arg("replication")).await
            else {
                continue;
            };
            if !repl.contains("role:master") {
                continue;
            }
            let owned: Option<Vec<redis::Value>> =
                query(node, redis::cmd("CLUSTER").arg("SLOTS")).await;
            let mine = owned.unwrap_or_default().into_iter().any(|range| {
                let redis::Value::Array(parts) = range else {
                    return false;
                };
                let num = |v: Option<&redis::Value>| match v {
                    Some(redis::Value::Int(n)) => *n,
                    _ => -1,
                };
                let port = match parts.get(2) {
                    Some(redis::Value::Array(addr)) => num(addr.get(1)),
                    _ => -1,
                };
                (num(parts.first())..=num(parts.get(1))).contains(&i64::from(slot))
                    && port == i64::from(node.port())
            });
            if mine {
                return i;
            }
        }
        panic!("test harness: no running master serves slot {slot}");
    }

    /// Kills the master serving `slot` (SIGKILL) and waits until its replica has taken over
    /// and the cluster is healthy again. Returns the killed node's index.
    ///
    /// # Panics
    /// If the cluster has no replica for it or does not recover within 15 s.
    pub async fn fail_over_master_of(&mut self, slot: u16) -> usize {
        let killed = self.master_of(slot).await;
        if let Some(node) = self.nodes.get_mut(killed) {
            node.kill();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let healthy = self.healthy_now().await;
            if healthy {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "test harness: no failover within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        killed
    }

    /// Index of the node holding a client with pattern subscriptions (a classic subscriber).
    ///
    /// # Panics
    /// If none does.
    pub async fn subscribed_node(&self) -> usize {
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_running() {
                continue;
            }
            let clients: Option<String> = query(node, redis::cmd("CLIENT").arg("LIST")).await;
            if clients.is_some_and(|c| c.lines().any(|l| !l.contains(" psub=0 "))) {
                return i;
            }
        }
        panic!("test harness: no node has a pattern subscriber");
    }

    /// Kills node `index` (SIGKILL) and waits until the cluster is healthy again (its replica
    /// promoted, if it was a master).
    ///
    /// # Panics
    /// If the cluster does not recover within 15 s.
    pub async fn kill_node(&mut self, index: usize) {
        if let Some(node) = self.nodes.get_mut(index) {
            node.kill();
        }
        // Until the others have noticed, they still say ok: wait for them to see it failed.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        eventually("the cluster recovers", WAIT, || self.healthy_now()).await;
    }

    /// Whether every running node says `cluster_state:ok` and a running master serves every
    /// slot.
    async fn healthy_now(&self) -> bool {
        for node in self.running() {
            let Some(info) = query::<String>(node, redis::cmd("CLUSTER").arg("INFO")).await else {
                return false;
            };
            if !info.contains("cluster_state:ok") {
                return false;
            }
        }
        true
    }

    /// Moves `slot` (and its keys) to the running master at `to`, the way `redis-cli
    /// --cluster reshard` does: `IMPORTING`/`MIGRATING`, `MIGRATE` the keys, `SETSLOT NODE`.
    ///
    /// # Panics
    /// If a step fails.
    pub async fn move_slot(&self, slot: u16, to: usize) {
        let from = self.master_of(slot).await;
        let (Some(src), Some(dst)) = (self.nodes.get(from), self.nodes.get(to)) else {
            panic!("test harness: no such node");
        };
        if from == to {
            return;
        }
        let id = |n: &RedisServer| {
            let n = n.client();
            async move {
                let mut c = n.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("CLUSTER")
                    .arg("MYID")
                    .query_async::<String>(&mut c)
                    .await
                    .ok()
            }
        };
        let (Some(src_id), Some(dst_id)) = (id(src).await, id(dst).await) else {
            panic!("test harness: CLUSTER MYID failed");
        };
        let mut s = src.connection().await;
        let mut d = dst.connection().await;
        let ok = async {
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("IMPORTING")
                .arg(&src_id)
                .query_async::<()>(&mut d)
                .await?;
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("MIGRATING")
                .arg(&dst_id)
                .query_async::<()>(&mut s)
                .await?;
            loop {
                let keys: Vec<String> = redis::cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(slot)
                    .arg(100)
                    .query_async(&mut s)
                    .await?;
                if keys.is_empty() {
                    break;
                }
                let mut migrate = redis::cmd("MIGRATE");
                migrate
                    .arg("127.0.0.1")
                    .arg(dst.port())
                    .arg("")
                    .arg(0)
                    .arg(5000);
                if self.security.tls.is_some() {
                    migrate.arg("AUTH2").arg(ACL_USER).arg(ACL_PASSWORD);
                }
                migrate.arg("KEYS").arg(&keys);
                migrate.query_async::<()>(&mut s).await?;
            }
            for node in self.running() {
                let mut c = node.connection().await;
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg("NODE")
                    .arg(&dst_id)
                    .query_async::<()>(&mut c)
                    .await?;
            }
            Ok::<(), redis::RedisError>(())
        };
        if let Err(e) = ok.await {
            panic!("test harness: moving slot {slot} failed: {e}");
        }
        eventually("the slot move is seen by every node", WAIT, || async {
            self.master_of(slot).await == to
        })
        .await;
    }

    /// Waits until every master's writes have reached its replica.
    ///
    /// # Panics
    /// If they do not within 15 s.
    pub async fn wait_replicated(&self) {
        eventually("every replica is in sync", WAIT, || async {
            for node in self.running() {
                let Some(repl) = query::<String>(node, redis::cmd("INFO").arg("replication")).await
                else {
                    return false;
                };
                if repl.contains("role:master") && !replicated(node).await {
                    return false;
                }
            }
            true
        })
        .await;
    }

    /// CPU ticks of every node so far.
    pub fn cpu_ticks(&self) -> u64 {
        self.nodes.iter().map(RedisServer::cpu_ticks).sum()
    }

    /// Stops every node (keeping the data), then starts them again; waits until the cluster
    /// is healthy.
    pub async fn restart(&mut self) {
        for node in &mut self.nodes {
            node.stop().await;
        }
        for node in &mut self.nodes {
            node.spawn().await;
        }
        self.wait_healthy().await;
    }

    /// Stops every node (keeping the data).
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            node.stop().await;
        }
    }

    /// Starts the stopped nodes again; waits until the cluster is healthy.
    pub async fn start_again(&mut self) {
        for node in &mut self.nodes {
            node.start_again().await;
        }
        self.wait_healthy().await;
    }
}

/// A master, its replica and one Sentinel watching them (quorum 1; the master is judged down
/// after 1 s, a failover may take 3 s).
#[derive(Debug)]
pub struct RedisSentinel {
    master: RedisServer,
    replica: RedisServer,
    sentinel: RedisServer,
    /// Whether [`fail_over`](Self::fail_over) swapped the roles (`replica` is now the master).
    failed_over: bool,
}

impl RedisSentinel {
    /// Starts the three processes and waits until the Sentinel knows the replica.
    ///
    /// # Panics
    /// If a server does not come up.
    pub async fn start(security: Security) -> Self {
        let master = RedisServer::start_with(security.clone(), Vec::new()).await;
        let replica = RedisServer::start_with(
            security.clone(),
            vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                master.port().to_string(),
            ],
        )
        .await;
        let mut sentinel = RedisServer::prepare(security.clone(), Vec::new(), true);
        let mut conf = format!(
            "sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
             sentinel failover-timeout {SENTINEL_MASTER} 3000\n\
             sentinel parallel-syncs {SENTINEL_MASTER} 1\n",
            master.port()
        );
        if security.tls.is_some() {
            conf.push_str(&format!(
                "sentinel auth-user {SENTINEL_MASTER} {ACL_USER}\nsentinel auth-pass {SENTINEL_MASTER} {ACL_PASSWORD}\n"
            ));
        }
        let written = std::fs::write(sentinel.dir.join("sentinel.conf"), conf);
        assert!(written.is_ok(), "test harness: cannot write sentinel.conf");
        sentinel.spawn().await;
        let this = Self {
            master,
            replica,
            sentinel,
            failed_over: false,
        };
        eventually("the Sentinel knows the replica", WAIT, || async {
            let replicas: Option<Vec<std::collections::HashMap<String, String>>> = query(
                &this.sentinel,
                redis::cmd("SENTINEL").arg("REPLICAS").arg(SENTINEL_MASTER),
            )
            .await;
            replicas.is_some_and(|r| {
                r.iter()
                    .any(|r| r.get("flags").is_some_and(|f| f == "slave"))
            })
        })
        .await;
        this
    }

    /// One deployment shared by every test of the binary that does not fail it over; its
    /// processes end with the test process.
    pub async fn shared() -> &'static Self {
        SHARED_SENTINEL
            .get_or_init(|| Self::start(Security::default()))
            .await
    }

    /// `REDIS_SENTINELS` (`127.0.0.1:<port>`).
    pub fn sentinels(&self) -> Vec<String> {
        vec![self.sentinel.address()]
    }

    /// The current master.
    pub fn master(&self) -> &RedisServer {
        if self.failed_over {
            &self.replica
        } else {
            &self.master
        }
    }

    /// Every data node, for counters.
    pub fn data_nodes(&self) -> [&RedisServer; 2] {
        [&self.master, &self.replica]
    }

    /// Kills the master (SIGKILL) and waits until the Sentinel names the replica.
    ///
    /// # Panics
    /// If no failover happens within 15 s.
    pub async fn fail_over(&mut self) {
        let old = self.master().port();
        if self.failed_over {
            self.replica.kill();
        } else {
            self.master.kill();
        }
        eventually("the Sentinel promotes the replica", WAIT * 2, || async {
            let addr: Option<Vec<String>> = query(
                &self.sentinel,
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(SENTINEL_MASTER),
            )
            .await;
            addr.and_then(|a| a.get(1).cloned())
                .is_some_and(|p| p != old.to_string())
        })
        .await;
        self.failed_over = !self.failed_over;
    }

    /// Waits until the master's writes have reached the replica.
    ///
    /// # Panics
    /// If they do not within 15 s.
    pub async fn wait_replicated(&self) {
        eventually("the replica is in sync", WAIT, || replicated(self.master())).await;
    }

    /// Stops the master (keeping its data) and starts it again.
    pub async fn restart_master(&mut self) {
        if self.failed_over {
            self.replica.restart().await;
        } else {
            self.master.restart().await;
        }
    }
}

/// Redis's own counters (`INFO`) summed over one or more nodes, each read over one connection
/// kept open for the whole measurement: a connection per read would add reads of its own to
/// what is measured (each `INFO` here is one read per node, which callers subtract).
pub struct RedisCounters {
    conns: Vec<redis::aio::MultiplexedConnection>,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("nodes", &self.conns.len())
            .finish()
    }
}

impl RedisCounters {
    /// Connects to `server`.
    ///
    /// # Panics
    /// If the server does not answer: test setup only.
    pub async fn open(server: &RedisServer) -> Self {
        Self::open_all(std::slice::from_ref(server)).await
    }

    /// Connects to every server of `servers` (e.g. a cluster's nodes).
    ///
    /// # Panics
    /// If a server does not answer.
    pub async fn open_all(servers: &[RedisServer]) -> Self {
        let mut conns = Vec::new();
        for server in servers.iter().filter(|s| s.is_running()) {
            conns.push(server.connection().await);
        }
        Self { conns }
    }

    /// How many nodes are read (each `INFO` costs one read on each).
    pub fn nodes(&self) -> u64 {
        self.conns.len() as u64
    }

    /// `INFO <section>` of each node as `field → value`.
    ///
    /// # Panics
    /// If a server does not answer.
    async fn infos(&mut self, section: &str) -> Vec<std::collections::HashMap<String, String>> {
        let mut out = Vec::new();
        for conn in &mut self.conns {
            let text: String = match redis::cmd("INFO").arg(section).query_async(conn).await {
                Ok(text) => text,
                Err(e) => panic!("test harness: INFO {section} failed: {e}"),
            };
            out.push(
                text.lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.to_owned(), v.trim_end().to_owned()))
                    .collect(),
            );
        }
        out
    }

    /// `INFO <section>` of the first node as `field → value`.
    ///
    /// # Panics
    /// If the server does not answer.
    pub async fn info(&mut self, section: &str) -> std::collections::HashMap<String, String> {
        self.infos(section)
            .await
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Calls per command since start, summed over the nodes (`cmdstat_hmget` → `hmget`).
    pub async fn command_calls(&mut self) -> std::collections::HashMap<String, u64> {
        let mut total = std::collections::HashMap::new();
        for info in self.infos("commandstats").await {
            for (k, v) in info {
                let Some(name) = k.strip_prefix("cmdstat_") else {
                    continue;
                };
                let Some(calls) = v
                    .split(',')
                    .find_map(|f| f.strip_prefix("calls="))
                    .and_then(|c| c.parse::<u64>().ok())
                else {
                    continue;
                };
                *total.entry(name.to_owned()).or_insert(0) += calls;
            }
        }
        total
    }

    /// `total_reads_processed` summed over the nodes: reads Redis did on client sockets (one
    /// per round trip, however many pipelined commands it carried).
    pub async fn reads_processed(&mut self) -> u64 {
        self.infos("stats")
            .await
            .iter()
            .filter_map(|i| {
                i.get("total_reads_processed")
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .sum()
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
