//! A throw-away Sentinel deployment.

use super::*;

/// The shared Sentinel deployment of a test binary.
static SHARED_SENTINEL: tokio::sync::OnceCell<RedisSentinel> = tokio::sync::OnceCell::const_new();

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
