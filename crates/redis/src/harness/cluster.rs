//! A throw-away Redis Cluster.

use super::*;

/// A Redis Cluster of three masters (and, optionally, one replica each), made with
/// `redis-cli --cluster create`; a node is declared failed after 1 s (`cluster-node-timeout`).
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    security: Security,
}

/// The shared cluster of a test binary.
static SHARED: tokio::sync::OnceCell<RedisCluster> = tokio::sync::OnceCell::const_new();

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

    pub(super) fn running(&self) -> impl Iterator<Item = &RedisServer> {
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
        match self.running_master_of(slot).await {
            Some(i) => i,
            None => panic!("test harness: no running master serves slot {slot}"),
        }
    }

    /// Index of the running master serving `slot`, if one says it does.
    async fn running_master_of(&self, slot: u16) -> Option<usize> {
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
                return Some(i);
            }
        }
        None
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
            // Right after the kill the others still say ok: done when a running master (the
            // promoted replica) serves the slot and the cluster is healthy.
            let promoted = self.running_master_of(slot).await.is_some();
            if promoted && self.healthy_now().await {
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
    pub(super) async fn healthy_now(&self) -> bool {
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
