//! `SessionStore`: a HASH per session (`data` = JSON, `lastActivity`) under
//! `session:{<sha256>}`, and a SET per user (`user_sessions:{<userId>}`) of session hashes.
//!
//! The session and the index live in different Cluster slots, so they are written by separate
//! commands: the index first (a dangling member is pruned on read), then the session. The
//! operations over all of a user's sessions send one command per session key (`per_key`: one
//! pipeline on a single node, concurrent commands on a Cluster).

use crate::{RedisStores, error, millis};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::{Session, SessionKey, UserId};
use portal_domain::ports::stores::{RateDecision, RateLimiter, RatePolicy, SessionStore};
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Adds a member and extends the index TTL to at least the session's.
static INDEX_ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1",
    )
});

/// Overwrites an existing session only (a concurrent logout wins).
static REPLACE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'lastActivity', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1",
    )
});

/// Sets `lastActivity` on an existing session; never creates a TTL-less key.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'lastActivity', ARGV[1])
end
return 0",
    )
});

fn rfc3339(at: OffsetDateTime) -> Result<String, StoreError> {
    at.format(&Rfc3339)
        .map_err(|_| StoreError::Corrupt("timestamp not representable".into()))
}

/// Decodes the `HMGET data lastActivity` answer.
fn decode(data: Option<String>, activity: Option<String>) -> Result<Option<Session>, StoreError> {
    let Some(data) = data else {
        return Ok(None);
    };
    let mut session: Session =
        serde_json::from_str(&data).map_err(|_| error::corrupt("session"))?;
    if let Some(at) = activity.and_then(|a| OffsetDateTime::parse(&a, &Rfc3339).ok()) {
        session.last_activity = at;
    }
    Ok(Some(session))
}

fn encode(session: &Session) -> Result<String, StoreError> {
    serde_json::to_string(session).map_err(|_| StoreError::Corrupt("session not encodable".into()))
}

impl RedisStores {
    async fn index_add(
        &self,
        user: &UserId,
        key: &SessionKey,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut inv = INDEX_ADD.prepare_invoke();
        inv.key(self.keys().user_sessions(user))
            .arg(key.as_str())
            .arg(millis(ttl));
        self.eval::<i64>("session index", inv).await.map(drop)
    }

    /// `<verb> session:{<member>}` for each index member.
    fn session_cmds(&self, verb: &str, members: &[String]) -> Vec<redis::Cmd> {
        members
            .iter()
            .map(|m| {
                let mut cmd = redis::cmd(verb);
                cmd.arg(self.keys().session(&SessionKey::from_hex(m.as_str())));
                cmd
            })
            .collect()
    }
}

#[async_trait]
impl SessionStore for RedisStores {
    async fn create(
        &self,
        key: &SessionKey,
        session: &Session,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let data = encode(session)?;
        let activity = rfc3339(session.last_activity)?;
        self.index_add(&session.user_id, key, ttl).await?;
        let skey = self.keys().session(key);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("DEL")
            .arg(&skey)
            .ignore()
            .cmd("HSET")
            .arg(&skey)
            .arg("data")
            .arg(data)
            .arg("lastActivity")
            .arg(activity)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&skey)
            .arg(millis(ttl))
            .ignore();
        self.pipe::<()>("session create", &pipe).await
    }

    async fn get(&self, key: &SessionKey) -> Result<Option<Session>, StoreError> {
        let (data, activity): (Option<String>, Option<String>) = self
            .read(
                "session get",
                redis::cmd("HMGET")
                    .arg(self.keys().session(key))
                    .arg("data")
                    .arg("lastActivity"),
            )
            .await?;
        decode(data, activity)
    }

    /// One round trip: `HMGET` of the session and `EVALSHA` of the rate script, pipelined on a
    /// single node. The pipeline ignores per-command errors so that a `NOSCRIPT` (script cache
    /// flushed) only costs the limiter part: it is then retried alone through
    /// [`RateLimiter::hit`], which loads the script; if that fails too, the decision is `None`
    /// and the caller applies the limit its own way. A session-read error fails the call (fail
    /// closed).
    ///
    /// On a Cluster the session and the user's limit live in different slots (usually on
    /// different masters), so the two commands go out at the same time instead, each to its
    /// own master: still one round trip of latency.
    async fn get_and_hit(
        &self,
        key: &SessionKey,
        rate_key: &str,
        policy: RatePolicy,
    ) -> Result<(Option<Session>, Option<RateDecision>), StoreError> {
        if self.is_cluster() {
            let (session, decision) =
                futures::join!(SessionStore::get(self, key), self.hit(rate_key, policy, 1));
            return Ok((session?, decision.ok()));
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors()
            .cmd("HMGET")
            .arg(self.keys().session(key))
            .arg("data")
            .arg("lastActivity")
            .add_command(self.rate_evalsha(rate_key, policy, 1));
        type Reply = (
            redis::RedisResult<(Option<String>, Option<String>)>,
            redis::RedisResult<crate::coordination::RateReply>,
        );
        let (read, hit): Reply = self.pipe("session get", &pipe).await?;
        let (data, activity) = read.map_err(|e| error::unavailable("session get", &e))?;
        let session = decode(data, activity)?;
        let decision = match hit {
            Ok(reply) => Some(crate::coordination::rate_decision(policy, reply)),
            Err(_) => self.hit(rate_key, policy, 1).await.ok(),
        };
        Ok((session, decision))
    }

    async fn replace(
        &self,
        key: &SessionKey,
        session: &Session,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let data = encode(session)?;
        let activity = rfc3339(session.last_activity)?;
        let mut inv = REPLACE.prepare_invoke();
        inv.key(self.keys().session(key))
            .arg(data)
            .arg(activity)
            .arg(millis(ttl));
        let replaced: i64 = self.eval("session replace", inv).await?;
        if replaced == 1 {
            self.index_add(&session.user_id, key, ttl).await?;
        }
        Ok(replaced == 1)
    }

    async fn touch(&self, key: &SessionKey, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut inv = TOUCH.prepare_invoke();
        inv.key(self.keys().session(key)).arg(rfc3339(at)?);
        self.eval::<i64>("session touch", inv).await.map(drop)
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        let skey = self.keys().session(key);
        let data: Option<String> = self
            .query("session delete", redis::cmd("HGET").arg(&skey).arg("data"))
            .await?;
        let user = data
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            .and_then(|v| v.get("userId").and_then(|u| u.as_str()).map(str::to_owned));
        self.query::<i64>("session delete", redis::cmd("DEL").arg(&skey))
            .await?;
        if let Some(user) = user {
            let index = self.keys().user_sessions(user.as_str());
            self.query::<i64>(
                "session delete",
                redis::cmd("SREM").arg(index).arg(key.as_str()),
            )
            .await?;
        }
        Ok(())
    }

    async fn delete_all_for_user(&self, user: &UserId) -> Result<Vec<SessionKey>, StoreError> {
        let index = self.keys().user_sessions(user);
        let members: Vec<String> = self
            .read("session delete all", redis::cmd("SMEMBERS").arg(&index))
            .await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let deleted: Vec<i64> = self
            .per_key(
                "session delete all",
                false,
                &self.session_cmds("DEL", &members),
            )
            .await?;
        let mut srem = redis::cmd("SREM");
        srem.arg(&index);
        for m in &members {
            srem.arg(m);
        }
        self.query::<i64>("session delete all", &srem).await?;
        Ok(members
            .into_iter()
            .zip(deleted)
            .filter(|(_, n)| *n > 0)
            .map(|(m, _)| SessionKey::from_hex(m))
            .collect())
    }
}
