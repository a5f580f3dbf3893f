//! `OnboardingStore`: `onboarding:{<tenant>}` = `{"version":n,"state":{...}}`, saved by one
//! Lua compare-and-set (create-if-absent or compare version, then `SET ... PX ttl`).

use crate::{RedisStores, error, millis};
use async_trait::async_trait;
use portal_domain::StoreError;
use portal_domain::model::TenantId;
use portal_domain::onboarding::OnboardingState;
use portal_domain::ports::stores::{OnboardingStore, SaveOutcome, Versioned};
use redis::Script;
use serde::Deserialize;
use std::sync::LazyLock;
use std::time::Duration;

/// Returns `{1, new version}` when written, `{0, current or false}` on conflict, `{2, current}`
/// when the stored value is not ours. The version is read with a pattern rather than
/// `cjson`, so the state JSON is stored byte for byte as Rust wrote it.
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"local cur = redis.call('GET', KEYS[1])
local expected = tonumber(ARGV[1])
local nv = 1
if cur then
  local v = tonumber(string.match(cur, '^{"version":(%d+),'))
  if v == nil then return {2, cur} end
  if expected < 0 or v ~= expected then return {0, cur} end
  nv = v + 1
elseif expected >= 0 then
  return {0, false}
end
redis.call('SET', KEYS[1], '{"version":' .. string.format('%d', nv) .. ',"state":' .. ARGV[2] .. '}', 'PX', ARGV[3])
return {1, string.format('%d', nv)}"#,
    )
});

#[derive(Deserialize)]
struct Stored {
    version: u64,
    state: OnboardingState,
}

fn decode(raw: &str) -> Result<Versioned<OnboardingState>, StoreError> {
    let stored: Stored =
        serde_json::from_str(raw).map_err(|_| error::corrupt("onboarding state"))?;
    Ok(Versioned {
        version: stored.version,
        value: stored.state,
    })
}

#[async_trait]
impl OnboardingStore for RedisStores {
    async fn load(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Versioned<OnboardingState>>, StoreError> {
        let raw: Option<String> = self
            .read(
                "onboarding load",
                redis::cmd("GET").arg(self.keys().onboarding(tenant)),
            )
            .await?;
        raw.as_deref().map(decode).transpose()
    }

    async fn save(
        &self,
        tenant: TenantId,
        state: &OnboardingState,
        expected: Option<u64>,
        ttl: Duration,
    ) -> Result<SaveOutcome<OnboardingState>, StoreError> {
        let json = serde_json::to_string(state)
            .map_err(|_| StoreError::Corrupt("onboarding state not encodable".into()))?;
        let expected = expected.map_or_else(|| "-1".to_owned(), |v| v.to_string());
        let mut inv = SAVE.prepare_invoke();
        inv.key(self.keys().onboarding(tenant))
            .arg(expected)
            .arg(json)
            .arg(millis(ttl));
        let (code, value): (i64, Option<String>) = self.eval("onboarding save", inv).await?;
        match (code, value) {
            (1, Some(v)) => v
                .parse()
                .map(SaveOutcome::Saved)
                .map_err(|_| error::corrupt("onboarding version")),
            (0, current) => Ok(SaveOutcome::Conflict(
                current.as_deref().map(decode).transpose()?,
            )),
            _ => Err(error::corrupt("onboarding state")),
        }
    }
}
