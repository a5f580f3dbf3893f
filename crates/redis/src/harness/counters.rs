//! Redis's own counters, for benchmarks and round-trip tests.

use super::*;

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
    pub(super) async fn infos(
        &mut self,
        section: &str,
    ) -> Vec<std::collections::HashMap<String, String>> {
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
