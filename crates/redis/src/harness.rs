//! [`RedisServer`]: a throw-away `redis-server` for tests (feature `test-harness`).
//!
//! Started on a free port with no persistence configured (`--save "" --appendonly no`) and a
//! private temporary directory. [`RedisServer::stop`] is a graceful `SHUTDOWN SAVE`, which
//! writes the dataset to that directory, and [`RedisServer::restart`] starts again on the same
//! port and directory and loads it: an outage that loses no data, like restarting a persistent
//! production Redis. [`RedisServer::kill`] is the crash (SIGKILL, data lost).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for the server to answer or to exit.
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

/// A `redis-server` child process, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    /// Working directory (`dump.rdb`), removed on drop.
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("test harness: no free local port: {e}"),
    }
}

impl RedisServer {
    /// Launches `redis-server` and waits until it answers `PING`.
    ///
    /// # Panics
    /// If `redis-server` is not installed or does not come up: tests never skip silently.
    pub async fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "portal-redis-{}-{port}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("test harness: cannot create {}: {e}", dir.display());
        }
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.spawn().await;
        server
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port, stable across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => panic!(
                "test harness: cannot run `redis-server` ({e}); install it (apt-get install redis-server)"
            ),
        };
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        let client = match redis::Client::open(self.url()) {
            Ok(c) => c,
            Err(e) => panic!("test harness: bad url: {e}"),
        };
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("test harness: redis-server exited at start-up ({status})");
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
        while let Some(child) = self.child.as_mut() {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => {
                    self.child = None;
                }
                Ok(None) if Instant::now() >= deadline => self.kill_now(),
                Ok(None) => tokio::time::sleep(POLL).await,
            }
        }
    }

    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A frozen server must be able to die.
            drop(
                Command::new("kill")
                    .arg("-CONT")
                    .arg(child.id().to_string())
                    .status(),
            );
            drop(child.kill());
            drop(child.wait());
        }
    }

    /// Graceful stop that keeps the data (`SHUTDOWN SAVE`); falls back to a kill.
    pub async fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        if let Ok(client) = redis::Client::open(self.url())
            && let Ok(Ok(mut conn)) = tokio::time::timeout(
                Duration::from_secs(2),
                client.get_multiplexed_async_connection(),
            )
            .await
        {
            // The server closes the connection instead of answering: the error is expected.
            drop(
                tokio::time::timeout(
                    Duration::from_secs(5),
                    redis::cmd("SHUTDOWN")
                        .arg("SAVE")
                        .query_async::<()>(&mut conn),
                )
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

    /// Hangs the server (SIGSTOP): connections stay open but nothing answers, like a stuck or
    /// partitioned Redis. Undo with [`thaw`](Self::thaw).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = self.child.as_ref() {
            let status = Command::new("kill")
                .arg(sig)
                .arg(child.id().to_string())
                .status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "test harness: kill {sig} failed"
            );
        }
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill_now();
        drop(std::fs::remove_dir_all(&self.dir));
    }
}

/// Redis's own counters (`INFO`), read over one connection kept open for the whole
/// measurement: a connection per read would add reads of its own to what is measured (each
/// `INFO` here is one read, which callers subtract).
pub struct RedisCounters {
    conn: redis::aio::MultiplexedConnection,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters").finish_non_exhaustive()
    }
}

impl RedisCounters {
    /// Connects to `server`.
    ///
    /// # Panics
    /// If the server does not answer: test setup only.
    pub async fn open(server: &RedisServer) -> Self {
        let conn = async {
            redis::Client::open(server.url())?
                .get_multiplexed_async_connection()
                .await
        };
        match conn.await {
            Ok(conn) => Self { conn },
            Err(e) => panic!("test harness: cannot connect to redis-server: {e}"),
        }
    }

    /// `INFO <section>` as `field → value`.
    ///
    /// # Panics
    /// If the server does not answer.
    pub async fn info(&mut self, section: &str) -> std::collections::HashMap<String, String> {
        let text: String = match redis::cmd("INFO")
            .arg(section)
            .query_async(&mut self.conn)
            .await
        {
            Ok(text) => text,
            Err(e) => panic!("test harness: INFO {section} failed: {e}"),
        };
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim_end().to_owned()))
            .collect()
    }

    /// Calls per command since start (`cmdstat_hmget` → `hmget`).
    pub async fn command_calls(&mut self) -> std::collections::HashMap<String, u64> {
        self.info("commandstats")
            .await
            .into_iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("cmdstat_")?.to_owned();
                let calls = v.split(',').find_map(|f| f.strip_prefix("calls="))?;
                Some((name, calls.parse().ok()?))
            })
            .collect()
    }

    /// `total_reads_processed`: reads Redis did on client sockets (one per round trip,
    /// however many pipelined commands it carried).
    pub async fn reads_processed(&mut self) -> u64 {
        self.info("stats")
            .await
            .get("total_reads_processed")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}
