//! The connection every request uses, per topology, and how a new one is opened.
//!
//! - One node: a multiplexed connection taken from the deadpool-redis pool.
//! - Cluster: the `redis` crate's own async cluster connection (`cluster-async`): one
//!   multiplexed connection per node, slot map, `MOVED`/`ASK` and failover handled inside.
//! - Sentinel: the `redis` crate's `SentinelClient` names the current master (checking its
//!   role); a multiplexed connection to it. After a failover the old connection fails (or
//!   answers `READONLY`), is dropped, and the next one asks the Sentinels again.
//!
//! Every new connection is checked against the configured topology: a Cluster node or a
//! Sentinel given as the single node's URL (or the reverse) is refused with a message naming
//! the setting to use ([`Opened::Mismatch`]).

use crate::config::{self, RedisSettings, Topology};
use deadpool_redis::{Pool, Runtime};
use portal_domain::StoreError;
use portal_domain::secret::ExposeSecret;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

/// The request connection: cheap to clone, shared by every command.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One node (also the Sentinel's current master).
    Node(MultiplexedConnection),
    /// A whole Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// What opening a connection gave.
pub(crate) enum Opened {
    Ok(Conn),
    /// Redis did not answer (or refused us): try again later.
    Unavailable(StoreError),
    /// Redis answered, but it is not the configured topology: the message names the setting to
    /// use. Trying again will not help.
    Mismatch(String),
}

/// Opens connections for one topology.
pub(crate) enum Connector {
    Single {
        pool: Pool,
        /// Opens the dedicated pub/sub connection, which is not pooled.
        client: redis::Client,
    },
    Cluster {
        client: ClusterClient,
        /// Seeds, TLS and credentials again, for the sharded pub/sub connection (RESP3 with a
        /// push channel, which has to be set when the client is built).
        settings: ClusterSettings,
    },
    Sentinel {
        /// Locked: looking the master up mutates the client's cache of Sentinel connections.
        client: tokio::sync::Mutex<SentinelClient>,
        config: AsyncConnectionConfig,
    },
}

/// What a cluster client is built from.
#[derive(Clone)]
pub(crate) struct ClusterSettings {
    nodes: Vec<redis::ConnectionAddr>,
    username: Option<String>,
    password: Option<String>,
    tls: bool,
    certs: Option<redis::TlsCertificates>,
    connect_timeout: std::time::Duration,
    command_timeout: std::time::Duration,
}

impl ClusterSettings {
    /// A builder with everything but the protocol and push channel.
    pub(crate) fn builder(&self) -> ClusterClientBuilder {
        let mut b = ClusterClientBuilder::new(self.nodes.clone())
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.command_timeout)
            // Redirections and a failover's short gap are retried inside, within the
            // request's own deadline.
            .retries(6)
            .min_retry_wait(20)
            .max_retry_wait(400);
        if let Some(user) = &self.username {
            b = b.username(user);
        }
        if let Some(pw) = &self.password {
            b = b.password(pw);
        }
        if self.tls {
            b = b.tls(redis::TlsMode::Secure);
        }
        if let Some(certs) = &self.certs {
            b = b.certs(certs.clone());
        }
        b
    }
}

impl ClusterSettings {
    /// A plain client for one node of the cluster (the classic subscription's connection), with
    /// the cluster's credentials and TLS.
    pub(crate) fn node_client(&self, host: &str, port: u16) -> redis::RedisResult<redis::Client> {
        use redis::IntoConnectionInfo;
        let addr = if self.tls {
            redis::ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(host.to_owned(), port)
        };
        let info = addr.into_connection_info()?;
        let mut redis_info = info.redis_settings().clone();
        if let Some(user) = &self.username {
            redis_info = redis_info.set_username(user);
        }
        if let Some(pw) = &self.password {
            redis_info = redis_info.set_password(pw);
        }
        let info = info.set_redis_settings(redis_info);
        match &self.certs {
            Some(certs) => redis::Client::build_with_tls(info, certs.clone()),
            None => redis::Client::open(info),
        }
    }
}

fn build_error(what: &str, e: &redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!(
        "{what}: {}",
        e.detail().unwrap_or("invalid settings")
    ))
}

impl Connector {
    /// Checks the settings and builds the clients; connects lazily.
    pub(crate) fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout));
        match &settings.topology {
            Topology::Single { url } => {
                let client = config::single_client(settings, url)?;
                let manager = deadpool_redis::Manager::new_with_config(
                    client.get_connection_info().clone(),
                    config,
                )
                .map_err(|_| StoreError::Unavailable("invalid redis URL".into()))?;
                let pool = Pool::builder(manager)
                    .max_size(settings.pool_size.max(1))
                    .runtime(Runtime::Tokio1)
                    .wait_timeout(Some(settings.connect_timeout))
                    .create_timeout(Some(settings.connect_timeout))
                    .recycle_timeout(Some(settings.connect_timeout))
                    .build()
                    .map_err(|_| {
                        StoreError::Unavailable("could not build the redis pool".into())
                    })?;
                Ok(Self::Single { pool, client })
            }
            Topology::Cluster { nodes } => {
                let tls = settings.uses_tls();
                let nodes = nodes
                    .iter()
                    .map(|n| config::node_addr(n, tls))
                    .collect::<Result<Vec<_>, _>>()?;
                if nodes.is_empty() {
                    return Err(StoreError::Unavailable(
                        "REDIS_CLUSTER_NODES names no node".into(),
                    ));
                }
                let cluster = ClusterSettings {
                    nodes,
                    username: settings.username.clone(),
                    password: settings
                        .password
                        .as_ref()
                        .map(|p| p.expose_secret().to_owned()),
                    tls,
                    certs: settings.certificates()?,
                    connect_timeout: settings.connect_timeout,
                    command_timeout: settings.command_timeout,
                };
                let client = cluster
                    .builder()
                    .build()
                    .map_err(|e| build_error("REDIS_CLUSTER_NODES", &e))?;
                Ok(Self::Cluster {
                    client,
                    settings: cluster,
                })
            }
            Topology::Sentinel { sentinels, master } => {
                let tls = settings.uses_tls();
                let addrs = sentinels
                    .iter()
                    .map(|n| config::node_addr(n, tls))
                    .collect::<Result<Vec<_>, _>>()?;
                if addrs.is_empty() {
                    return Err(StoreError::Unavailable(
                        "REDIS_SENTINELS names no Sentinel".into(),
                    ));
                }
                let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)
                    .map_err(|e| build_error("REDIS_SENTINELS", &e))?;
                if tls {
                    b = b
                        .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
                }
                if let Some(certs) = settings.certificates()? {
                    b = b
                        .set_client_to_redis_certificates(certs.clone())
                        .set_client_to_sentinel_certificates(certs);
                }
                if let Some(user) = &settings.username {
                    b = b.set_client_to_redis_username(user);
                }
                if let Some(pw) = &settings.password {
                    b = b.set_client_to_redis_password(pw.expose_secret());
                }
                if let Some(user) = &settings.sentinel_username {
                    b = b.set_client_to_sentinel_username(user);
                }
                if let Some(pw) = &settings.sentinel_password {
                    b = b.set_client_to_sentinel_password(pw.expose_secret());
                }
                let client = b.build().map_err(|e| build_error("REDIS_SENTINELS", &e))?;
                Ok(Self::Sentinel {
                    client: tokio::sync::Mutex::new(client),
                    config,
                })
            }
        }
    }

    /// Opens a new request connection and checks the topology. The caller bounds the time.
    pub(crate) async fn open(&self) -> Opened {
        match self {
            Self::Single { pool, .. } => {
                let pooled = match pool.get().await {
                    Ok(c) => c,
                    Err(deadpool_redis::PoolError::Backend(e)) => {
                        return Opened::Unavailable(crate::error::unavailable("connect", &e));
                    }
                    Err(deadpool_redis::PoolError::Timeout(_)) => {
                        return Opened::Unavailable(crate::error::timed_out("connect"));
                    }
                    Err(_) => return Opened::Unavailable(crate::error::no_connection("connect")),
                };
                let mut conn = deadpool_redis::Connection::take(pooled);
                match server_mode(&mut conn).await {
                    Ok(mode) if mode == "standalone" => Opened::Ok(Conn::Node(conn)),
                    Ok(mode) if mode == "cluster" => Opened::Mismatch(
                        "REDIS_URL points at a Redis Cluster node: name the cluster's nodes in REDIS_CLUSTER_NODES instead".into(),
                    ),
                    Ok(_) => Opened::Mismatch(
                        "REDIS_URL points at a Redis Sentinel: set REDIS_SENTINELS and REDIS_SENTINEL_MASTER instead".into(),
                    ),
                    Err(e) => Opened::Unavailable(crate::error::unavailable("connect", &e)),
                }
            }
            Self::Cluster { client, .. } => match client.get_async_connection().await {
                Ok(conn) => Opened::Ok(Conn::Cluster(conn)),
                Err(e) if is_unknown_command(&e) || is_cluster_disabled(&e) => Opened::Mismatch(
                    "REDIS_CLUSTER_NODES names a node that is not in cluster mode: use REDIS_URL for one node, REDIS_SENTINELS for Sentinel".into(),
                ),
                Err(e) => Opened::Unavailable(crate::error::unavailable("connect", &e)),
            },
            Self::Sentinel { client, config } => {
                let found = client.lock().await.async_get_client().await;
                let client = match found {
                    Ok(c) => c,
                    Err(e) if is_unknown_command(&e) => {
                        return Opened::Mismatch(
                            "REDIS_SENTINELS names a server that is not a Sentinel: use REDIS_URL for one node, REDIS_CLUSTER_NODES for a Cluster".into(),
                        );
                    }
                    Err(e) => return Opened::Unavailable(crate::error::unavailable("connect", &e)),
                };
                match client.get_multiplexed_async_connection_with_config(config).await {
                    Ok(conn) => Opened::Ok(Conn::Node(conn)),
                    Err(e) => Opened::Unavailable(crate::error::unavailable("connect", &e)),
                }
            }
        }
    }

    /// A client for a dedicated (RESP2) pub/sub connection to one node: the single node, the
    /// Sentinel's current master. (A Cluster's classic subscription picks a node through the
    /// request connection: see `bus`.)
    pub(crate) async fn pubsub_client(&self) -> Result<redis::Client, StoreError> {
        match self {
            Self::Single { client, .. } => Ok(client.clone()),
            Self::Sentinel { client, .. } => client
                .lock()
                .await
                .async_get_client()
                .await
                .map_err(|e| crate::error::unavailable("subscribe", &e)),
            Self::Cluster { .. } => Err(StoreError::Unavailable(
                "redis subscribe: no single node on a cluster".into(),
            )),
        }
    }

    /// `(size, available, waiting)`: the request connections the threads hold, and on a single
    /// node the pool's idle connections and waiting openers (on a Cluster or Sentinel there is
    /// no pool).
    pub(crate) fn pool_status(&self, held: usize) -> (usize, usize, usize) {
        match self {
            Self::Single { pool, .. } => {
                let s = pool.status();
                (held, s.available, s.waiting)
            }
            _ => (held, 0, 0),
        }
    }
}

/// `redis_mode` from `INFO server`: `standalone`, `cluster` or `sentinel`.
async fn server_mode(conn: &mut MultiplexedConnection) -> redis::RedisResult<String> {
    let info: String = redis::cmd("INFO").arg("server").query_async(conn).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("redis_mode:"))
        .map_or_else(|| "standalone".to_owned(), |m| m.trim().to_owned()))
}

fn is_unknown_command(e: &redis::RedisError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("unknown command")
        || text.contains("unknown subcommand")
        // The `redis` crate's own check of a Sentinel (`ROLE`).
        || text.contains("does not point to a sentinel")
}

fn is_cluster_disabled(e: &redis::RedisError) -> bool {
    e.to_string()
        .to_ascii_lowercase()
        .contains("cluster support disabled")
}
