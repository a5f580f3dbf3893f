//! What the production profile (decisions §2) refuses beyond garde's rules of single settings.

use super::*;

impl Settings {
    /// What the production profile (decisions §2) refuses, beyond garde's field rules: every
    /// setting production needs, secure cookies, https public URLs, no wildcard origin, no
    /// placeholder key, no simulator. Messages name settings, never their values.
    pub(super) fn production_problems(&self) -> Vec<String> {
        const REQUIRED: &str = "required when PORTAL_ENV=production";
        let mut problems = Vec::new();
        let mut require = |name: &str, present: bool, why: &str| {
            if !present {
                problems.push(format!("{name}: {REQUIRED}{why}"));
            }
        };
        require(
            "REDIS_URL (or REDIS_HOST, REDIS_CLUSTER_NODES, REDIS_SENTINELS)",
            self.wants_redis(),
            " (unset: in-memory stores, not shared between instances, lost on restart)",
        );
        require("ENCRYPTION_KEY", self.encryption_key.is_some(), "");
        require("COOKIE_SECRET", self.cookie_secret.is_some(), "");
        require(
            "AUDIT_HMAC_KEY",
            self.audit_hmac_key.is_some(),
            " (unset: a key per process, so the audit trail no longer verifies after a restart)",
        );
        require("BASE_URL", self.base_url.is_some(), "");
        require("GENESYS_CLIENT_ID", self.genesys_client_id.is_some(), "");
        for (name, url) in [
            ("AUTH_SERVICE_URL", &self.auth_service_url),
            ("TENANT_SERVICE_URL", &self.tenant_service_url),
            ("STATE_MANAGER_URL", &self.state_manager_url),
        ] {
            require(
                name,
                url.is_some(),
                " (unset: the simulator with demo data)",
            );
        }
        let urls = self.downstream_urls();
        require(
            "GENESYS_REGIONAL=true (or GENESYS_API_BASE_URL / GENESYS_LOGIN_BASE_URL)",
            urls.genesys_is_http(),
            " (unset: simulated Genesys Cloud)",
        );
        require(
            "META_GRAPH_VERSION (or META_GRAPH_BASE_URL)",
            urls.meta_is_http(),
            " (unset: simulated WhatsApp Cloud API; e.g. v18.0)",
        );

        if let Some(key) = &self.encryption_key
            && is_repeated_byte_key(key.expose_secret())
        {
            problems.push(
                "ENCRYPTION_KEY: a placeholder (every byte the same, e.g. all zeros), not a key"
                    .into(),
            );
        }
        for (name, secret) in [
            ("COOKIE_SECRET", &self.cookie_secret),
            ("AUDIT_HMAC_KEY", &self.audit_hmac_key),
        ] {
            if let Some(secret) = secret
                && is_placeholder(secret.expose_secret())
            {
                problems.push(format!(
                    "{name}: a placeholder (one repeated character), not a secret"
                ));
            }
        }
        if self.log_format.as_deref() == Some("pretty") {
            problems.push(
                "LOG_FORMAT: must be json when PORTAL_ENV=production (log shippers read JSON lines)"
                    .into(),
            );
        }
        if self.cookie_secure == Some(false) {
            problems.push(
                "COOKIE_SECURE: must not be false when PORTAL_ENV=production (session cookies would travel over plain HTTP)".into(),
            );
        }
        if self.frontend_url.contains('*') {
            problems.push(
                "FRONTEND_URL: a wildcard origin (*) is refused; name the frontend's https origin"
                    .into(),
            );
        }
        // Public URLs: what browsers and Genesys/Meta see. The platform services
        // (AUTH_SERVICE_URL, ...) are internal and may be plain http inside the cluster.
        for (name, value) in [
            ("BASE_URL", self.base_url.as_deref()),
            ("FRONTEND_URL", Some(self.frontend_url.as_str())),
            ("GENESYS_REDIRECT_URI", self.genesys_redirect_uri.as_deref()),
            (
                "GENESYS_LOGIN_BASE_URL",
                self.genesys_login_base_url.as_deref(),
            ),
            ("GENESYS_API_BASE_URL", self.genesys_api_base_url.as_deref()),
            ("META_GRAPH_BASE_URL", self.meta_graph_base_url.as_deref()),
        ] {
            if let Some(v) = value
                && !v.contains('*')
                && !v.trim().to_ascii_lowercase().starts_with("https://")
            {
                problems.push(format!(
                    "{name}: must be an https:// URL when PORTAL_ENV=production"
                ));
            }
        }
        problems
    }
}
