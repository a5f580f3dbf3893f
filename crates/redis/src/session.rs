//! `SessionStore`: a HASH per session (`data` = JSON, `lastActivity`) under
//! `session:{<sha256>}`, and a sorted set per user (`user_sessions:{<userId>}`) of session
//! hashes scored by their expiry (milliseconds, Redis's clock).
//!
//! The session and the index live in different Cluster slots, so they are written by separate
//! commands: the index first, then the session. Every write to the index drops the members
//! whose expiry has passed, and the index itself expires with its last member, so it never
//! outgrows the user's live sessions; `list_for_user` also drops members whose session is
//! gone (deleted between the two commands). The operations over all of a user's sessions
//! send one command per session key (`per_key`: one pipeline on a single node, concurrent
//! commands on a Cluster).
//!
//! An index written by an earlier version (a plain SET) is turned into the sorted set by the
//! first script that touches it, each member scored with the set's own expiry.

use crate::{RedisStores, error, millis};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::{Session, SessionKey, UserId};
use portal_domain::ports::stores::{RateDecision, RateLimiter, RatePolicy, SessionStore};
use redis::Script;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;
use thread_local::ThreadLocal;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The Lua prelude of every index script: `now` (ms, Redis's clock), an index of an earlier
/// version (a SET) converted, expired members dropped. ARGV[1] is the TTL (ms) a converted
/// member gets when the old set had none.
const INDEX_PRELUDE: &str = r"local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('TYPE', KEYS[1]).ok == 'set' then
  local members = redis.call('SMEMBERS', KEYS[1])
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then left = tonumber(ARGV[1]) end
  redis.call('DEL', KEYS[1])
  for _, m in ipairs(members) do redis.call('ZADD', KEYS[1], now + left, m) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
";

/// The index expires with its last member (or goes when empty).
const INDEX_EXPIRY: &str = r"local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
";

/// Adds (or re-scores) a member expiring `ARGV[1]` ms from now.
static INDEX_ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{INDEX_PRELUDE}redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])\n{INDEX_EXPIRY}return 1"
    ))
});

/// The live members.
static INDEX_LIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{INDEX_PRELUDE}{INDEX_EXPIRY}return redis.call('ZRANGE', KEYS[1], 0, -1)"
    ))
});

/// Removes members `ARGV[2..]`.
static INDEX_REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{INDEX_PRELUDE}for i = 2, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end\n{INDEX_EXPIRY}return 1"
    ))
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
    data.map(|data| parse(&data, activity.as_deref()))
        .transpose()
}

/// A stored session: its JSON, with `lastActivity` (written on its own) over the JSON's.
fn parse(data: &str, activity: Option<&str>) -> Result<Session, StoreError> {
    let mut session: Session = serde_json::from_str(data).map_err(|_| error::corrupt("session"))?;
    if let Some(at) = activity.and_then(|a| OffsetDateTime::parse(a, &Rfc3339).ok()) {
        session.last_activity = at;
    }
    Ok(session)
}

/// The sessions each thread decoded last, with the stored values they came from: a request's
/// session read whose stored values are byte for byte those decoded before is not parsed again
/// (decoding is a function of those bytes, so nothing goes stale: a changed session is a
/// changed value, and a missing one is `None` before the memo is asked). Saves the JSON and
/// RFC 3339 parsing of every request but a session's first on a thread. Bounded: a thread's
/// memo is emptied when it reaches [`DecodedSessions::MAX`] sessions.
#[derive(Default)]
pub(crate) struct DecodedSessions(ThreadLocal<RefCell<HashMap<String, Decoded>>>);

struct Decoded {
    data: String,
    activity: Option<String>,
    session: Session,
}

impl DecodedSessions {
    /// Sessions remembered per thread.
    const MAX: usize = 4096;

    fn decode(
        &self,
        key: &str,
        data: Option<String>,
        activity: Option<String>,
    ) -> Result<Option<Session>, StoreError> {
        let Some(data) = data else {
            return Ok(None);
        };
        let mut memo = self.0.get_or_default().borrow_mut();
        if let Some(known) = memo.get(key)
            && known.data == data
            && known.activity == activity
        {
            return Ok(Some(known.session.clone()));
        }
        let session = parse(&data, activity.as_deref())?;
        if memo.len() >= Self::MAX {
            memo.clear();
        }
        let decoded = Decoded {
            data,
            activity,
            session: session.clone(),
        };
        memo.insert(key.to_owned(), decoded);
        Ok(Some(session))
    }
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
            .arg(millis(ttl))
            .arg(key.as_str());
        self.eval::<i64>("session index", inv).await.map(drop)
    }

    /// The user's index members whose expiry has not passed.
    async fn index_live(&self, user: &UserId) -> Result<Vec<String>, StoreError> {
        let mut inv = INDEX_LIVE.prepare_invoke();
        inv.key(self.keys().user_sessions(user)).arg(millis(DAY));
        self.eval("session index", inv).await
    }

    async fn index_remove(
        &self,
        user: &(impl std::fmt::Display + ?Sized),
        members: &[&str],
    ) -> Result<(), StoreError> {
        if members.is_empty() {
            return Ok(());
        }
        let mut inv = INDEX_REMOVE.prepare_invoke();
        inv.key(self.keys().user_sessions(user)).arg(millis(DAY));
        for m in members {
            inv.arg(*m);
        }
        self.eval::<i64>("session index", inv).await.map(drop)
    }

    /// `<verb> session:{<member>} <args>` for each index member.
    fn session_cmds(&self, verb: &str, args: &[&str], members: &[String]) -> Vec<redis::Cmd> {
        members
            .iter()
            .map(|m| {
                let mut cmd = redis::cmd(verb);
                cmd.arg(self.keys().session(&SessionKey::from_hex(m.as_str())));
                for a in args {
                    cmd.arg(*a);
                }
                cmd
            })
            .collect()
    }
}

/// The TTL a member of an earlier version's index gets when that index had none.
const DAY: Duration = Duration::from_secs(24 * 3600);

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
        self.decoded().decode(key.as_str(), data, activity)
    }

    /// One round trip: `HMGET` of the session and the rate limit's hit (`SET NX PX`, `INCRBY`,
    /// `PTTL`), pipelined on a single node. The pipeline ignores per-command
    /// errors so that a failed hit (e.g. Redis out of memory refusing the write) only costs the
    /// limiter part: the decision is then `None` and the caller applies the limit its own way.
    /// A session-read error fails the call (fail closed).
    ///
    /// On a Cluster the session and the user's limit live in different slots (usually on
    /// different masters), so the two go out at the same time instead, each to its own master:
    /// still one round trip of latency.
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
            .arg("lastActivity");
        self.add_rate_hit(&mut pipe, rate_key, policy, 1);
        type Reply = (
            redis::RedisResult<(Option<String>, Option<String>)>,
            redis::RedisResult<u64>,
            redis::RedisResult<i64>,
        );
        let (read, count, pttl): Reply = self.pipe("session get", &pipe).await?;
        let (data, activity) = read.map_err(|e| error::unavailable("session get", &e))?;
        let session = self.decoded().decode(key.as_str(), data, activity)?;
        let decision = match (count, pttl) {
            (Ok(count), Ok(pttl)) => {
                Some(self.rate_decision(rate_key, policy, 1, (count, pttl)).await)
            }
            _ => None,
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
            self.index_remove(user.as_str(), &[key.as_str()]).await?;
        }
        Ok(())
    }

    async fn list_for_user(&self, user: &UserId) -> Result<Vec<(SessionKey, Session)>, StoreError> {
        let members = self.index_live(user).await?;
        let reads: Vec<(Option<String>, Option<String>)> = self
            .per_key(
                "session list",
                true,
                &self.session_cmds("HMGET", &["data", "lastActivity"], &members),
            )
            .await?;
        let mut live = Vec::with_capacity(members.len());
        let mut gone = Vec::new();
        for (member, (data, activity)) in members.iter().zip(reads) {
            match decode(data, activity)? {
                Some(session) => live.push((SessionKey::from_hex(member.as_str()), session)),
                None => gone.push(member.as_str()),
            }
        }
        self.index_remove(user, &gone).await?;
        Ok(live)
    }

    async fn delete_all_for_user(&self, user: &UserId) -> Result<Vec<SessionKey>, StoreError> {
        let members = self.index_live(user).await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let deleted: Vec<i64> = self
            .per_key(
                "session delete all",
                false,
                &self.session_cmds("DEL", &[], &members),
            )
            .await?;
        let all: Vec<&str> = members.iter().map(String::as_str).collect();
        self.index_remove(user, &all).await?;
        Ok(members
            .into_iter()
            .zip(deleted)
            .filter(|(_, n)| *n > 0)
            .map(|(m, _)| SessionKey::from_hex(m))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_contract::fixtures;
    use portal_domain::model::TenantId;

    /// The memo answers what decoding answers: the same session for the same stored values, the
    /// new one as soon as the data or the activity changed.
    #[test]
    fn a_decoded_session_is_reused_only_for_the_same_stored_values() {
        let memo = DecodedSessions::default();
        let mut session = fixtures::session(&fixtures::user(), TenantId::new_random());
        let data = encode(&session).unwrap();
        let activity = Some("2026-11-29T10:00:00Z".to_owned());
        let first = memo
            .decode("k", Some(data.clone()), activity.clone())
            .unwrap();
        let expected = decode(Some(data.clone()), activity.clone()).unwrap();
        assert_eq!(first, expected);
        assert_eq!(
            memo.decode("k", Some(data.clone()), activity.clone())
                .unwrap(),
            expected
        );

        session.name = "Renamed".into();
        let renamed = encode(&session).unwrap();
        let read = memo.decode("k", Some(renamed), activity).unwrap().unwrap();
        assert_eq!(read.name, "Renamed", "changed data is decoded again");

        let later = Some("2026-11-29T10:05:00Z".to_owned());
        let read = memo
            .decode("k", Some(data.clone()), later.clone())
            .unwrap()
            .unwrap();
        assert_eq!(read, decode(Some(data.clone()), later).unwrap().unwrap());
        assert_eq!(
            memo.decode("k", None, None).unwrap(),
            None,
            "a missing session"
        );
        assert!(
            memo.decode("k", Some("{".into()), None).is_err(),
            "corrupt data"
        );
    }

    #[test]
    fn the_memo_of_a_thread_stays_bounded() {
        let memo = DecodedSessions::default();
        let data = encode(&fixtures::session(
            &fixtures::user(),
            TenantId::new_random(),
        ))
        .unwrap();
        for i in 0..(DecodedSessions::MAX + 10) {
            memo.decode(&format!("k{i}"), Some(data.clone()), None)
                .unwrap();
        }
        let held = memo.0.get().map_or(0, |m| m.borrow().len());
        assert!(held <= DecodedSessions::MAX, "{held}");
    }
}
