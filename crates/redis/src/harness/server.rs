//! One throw-away `redis-server` (or Sentinel) under its watchdog.

use super::*;

/// One `redis-server` process (under its watchdog).
#[derive(Debug)]
pub(super) struct Process {
    /// The watchdog shell; closing its stdin makes it kill the server.
    watchdog: Child,
    stdin: Option<ChildStdin>,
    /// The `redis-server` process id (for signals).
    pid: u32,
}

impl Process {
    pub(super) fn spawn(args: &[String]) -> Self {
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
    pub(super) fn exited(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
            Err(_) => true,
        }
    }

    pub(super) fn signal(&self, sig: &str) {
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
    pub(super) fn kill(mut self) {
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
    pub(super) fn finish(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            drop(stdin.write_all(b"\n"));
        }
        drop(self.watchdog.wait());
    }

    /// `redis-server`'s CPU time so far (user + system), from `/proc/<pid>/stat`.
    pub(super) fn cpu_ticks(&self) -> u64 {
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
    pub(super) dir: PathBuf,
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

    pub(super) fn prepare(security: Security, extra: Vec<String>, sentinel: bool) -> Self {
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

    pub(super) async fn spawn(&mut self) {
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
            // No persistence; a replica's first sync starts at once (Redis 7 waits 5 s for
            // more replicas to share a diskless transfer: a third of the harness's wait).
            args.extend(
                [
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--repl-diskless-sync-delay",
                    "0",
                ]
                .iter()
                .map(|s| (*s).to_owned()),
            );
        }
        args.extend(self.extra.iter().cloned());
        self.process = Some(Process::spawn(&args));
        self.wait_ready().await;
    }

    pub(super) async fn wait_ready(&mut self) {
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

    pub(super) async fn wait_exit(&mut self) {
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

    pub(super) fn kill_now(&mut self) {
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
