//! Sign-in: the authorize redirect and Genesys's callback.

use super::{Authenticator, CurrentSession, REFRESH_FIELD, to_time};
use crate::audit::{AuditAction, AuditEvent, AuditOutcome};
use crate::crypto::sha256_hex;
use crate::error::StoreError;
use crate::model::{
    Ciphertext, RequestContext, Session, SessionId, TenantId, TenantStatus, UserId, UserProfile,
};
use crate::ports::downstream::{AuthServiceError, CodeExchange, TokenSet};
use crate::ports::stores::OneTimePurpose;
use crate::ports::system::{EncryptionContext, RandomExt};
use crate::secret::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

/// What a handler needs to send the browser to Genesys.
#[derive(Debug)]
pub struct LoginStart {
    /// The authorize URL, with state and PKCE challenge.
    pub redirect_url: Url,
    /// Value of the short-lived pre-login cookie that binds the callback to this browser.
    pub binding: SecretString,
}

/// Stored server-side under the SHA-256 of `state`.
#[derive(Debug, Serialize, Deserialize)]
struct PendingLogin {
    /// SHA-256 of the pre-login cookie.
    binding_hash: String,
    /// The PKCE verifier, encrypted (bound to the state digest).
    verifier: Ciphertext,
    /// Where to send the user after sign-in (a path on the frontend).
    return_to: Option<String>,
}

/// The query of Genesys's redirect to the callback.
#[derive(Debug, Default)]
pub struct CallbackParams {
    /// Authorization code.
    pub code: Option<SecretString>,
    /// The state we sent.
    pub state: Option<String>,
    /// OAuth error, when the user or Genesys refused.
    pub error: Option<String>,
}

/// A completed sign-in.
#[derive(Debug)]
pub struct SignedIn {
    /// The new session ID, for the cookie.
    pub session_id: SessionId,
    /// The session.
    pub session: Session,
    /// Frontend path to land on (`/dashboard` by default, `/onboarding` for a new tenant).
    pub return_to: String,
}

/// Why a callback failed. [`CallbackError::InvalidState`] and
/// [`CallbackError::MissingCode`] are answered with 400; the rest redirect the browser to
/// `/login?error={reason}`.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// `state` missing, unknown, already used, expired, or not bound to this browser.
    #[error("invalid or expired state parameter")]
    InvalidState,
    /// No `code` and no `error`.
    #[error("missing authorization code")]
    MissingCode,
    /// Genesys reported an error (e.g. `access_denied`).
    #[error("identity provider error: {0}")]
    Provider(String),
    /// The code was refused or could not be exchanged.
    #[error("token validation failed: {0}")]
    TokenValidation(AuthServiceError),
    /// The profile could not be read.
    #[error("profile retrieval failed: {0}")]
    Profile(AuthServiceError),
    /// The Tenant Service could not resolve the user's tenant.
    #[error("tenant resolution failed: {0}")]
    Tenant(crate::ports::downstream::TenantServiceError),
    /// The user's tenant is suspended.
    #[error("tenant suspended")]
    TenantSuspended,
    /// The session could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CallbackError {
    /// The `error` query value of the `/login` redirect (spec §5.1 names).
    pub fn reason(&self) -> String {
        match self {
            CallbackError::InvalidState => "invalid_state".into(),
            CallbackError::MissingCode => "missing_code".into(),
            CallbackError::Provider(e) => e.clone(),
            CallbackError::TokenValidation(_) => "token_validation_failed".into(),
            CallbackError::Profile(_) => "profile_retrieval_failed".into(),
            CallbackError::Tenant(_) => "tenant_resolution_failed".into(),
            CallbackError::TenantSuspended => "tenant_suspended".into(),
            CallbackError::Store(_) => "unexpected_error".into(),
        }
    }
}

impl Authenticator {
    /// Starts a sign-in: stores the pending login and returns where to send the browser.
    ///
    /// `login_hint` is passed through to Genesys; `return_to` (a frontend path starting with
    /// `/`) is where the user lands afterwards.
    pub async fn begin_login(
        &self,
        login_hint: Option<&str>,
        return_to: Option<&str>,
    ) -> Result<LoginStart, StoreError> {
        let state = self.random.token::<32>();
        let verifier = self.random.token::<32>();
        let binding = self.random.token::<32>();
        let state_digest = sha256_hex(state.expose_secret().as_bytes());
        let pending = PendingLogin {
            binding_hash: sha256_hex(binding.expose_secret().as_bytes()),
            verifier: self
                .cipher
                .encrypt(&verifier, &pending_context(&state_digest)),
            return_to: return_to
                .filter(|p| is_safe_return_path(p))
                .map(str::to_owned),
        };
        let payload =
            serde_json::to_string(&pending).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.one_time
            .put(
                OneTimePurpose::OAuthState,
                &state_digest,
                &payload,
                self.settings.pending_login_ttl,
            )
            .await?;

        let mut url = self.settings.authorize_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.settings.client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", &self.settings.redirect_uri)
                .append_pair("state", state.expose_secret())
                .append_pair(
                    "code_challenge",
                    &crate::crypto::pkce_challenge(verifier.expose_secret()),
                )
                .append_pair("code_challenge_method", "S256");
            if let Some(hint) = login_hint.filter(|h| !h.is_empty() && h.len() <= 254) {
                q.append_pair("login_hint", hint);
            }
        }
        tracing::info!(state = %crate::secret::mask(&state_digest), "sign-in started");
        Ok(LoginStart {
            redirect_url: url,
            binding,
        })
    }

    /// Completes a sign-in from Genesys's redirect. `binding` is the pre-login cookie,
    /// `context` the callback request (the session keeps its user agent and network). A user
    /// beyond the per-user session cap loses their least recently active session. Audited,
    /// whatever the outcome.
    pub async fn complete_login(
        &self,
        binding: Option<&str>,
        params: CallbackParams,
        context: &RequestContext,
    ) -> Result<SignedIn, CallbackError> {
        let result = self.sign_in(binding, params, context).await;
        match &result {
            Ok(signed_in) => {
                let current =
                    CurrentSession::new(signed_in.session_id.key(), signed_in.session.clone())
                        .with_context(context.clone());
                self.auditor.record(
                    AuditEvent::by(&current, AuditAction::SignIn, AuditOutcome::Success)
                        .target(self.session_target(&current.key)),
                );
                self.enforce_session_cap(&current).await;
            }
            Err(e) => self.auditor.record(
                AuditEvent::anonymous(AuditAction::SignIn, AuditOutcome::Failure, context)
                    .detail("reason", e.reason()),
            ),
        }
        result
    }

    async fn sign_in(
        &self,
        binding: Option<&str>,
        params: CallbackParams,
        context: &RequestContext,
    ) -> Result<SignedIn, CallbackError> {
        let (digest, pending) = self.take_pending_login(binding, params.state).await?;
        if let Some(error) = params.error {
            return Err(provider_refusal(&error));
        }
        let code = params.code.ok_or(CallbackError::MissingCode)?;
        let verifier = self
            .cipher
            .decrypt(&pending.verifier, &pending_context(&digest))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (tokens, profile) = self.exchange(code, verifier).await?;
        let (tenant_id, onboarding_only) = self.resolve_tenant(&profile.user_id).await?;
        let refresh_token = tokens.refresh_token.as_ref().map(|rt| {
            self.cipher.encrypt(
                rt,
                &EncryptionContext::user(&profile.user_id, REFRESH_FIELD),
            )
        });
        let now = self.clock.now();
        let session = Session {
            refresh_token,
            user_id: profile.user_id,
            tenant_id,
            role: profile.role,
            email: profile.email,
            name: profile.name,
            onboarding_only,
            created_at: now,
            expires_at: now + to_time(self.settings.session_ttl),
            last_activity: now,
            refreshed_at: None,
            client: context.client_info(),
        };
        let session_id = self.create_session(&session).await?;
        let return_to = match (pending.return_to, onboarding_only) {
            (Some(path), false) => path,
            (_, true) => "/onboarding".to_owned(),
            (None, false) => "/dashboard".to_owned(),
        };
        Ok(SignedIn {
            session_id,
            session,
            return_to,
        })
    }

    /// The pending login of `state`: present, known, unused, and bound to this browser. Taken
    /// (deleted) before anything else, so it can never be replayed. Returns its digest too.
    async fn take_pending_login(
        &self,
        binding: Option<&str>,
        state: Option<String>,
    ) -> Result<(String, PendingLogin), CallbackError> {
        let state = state
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or(CallbackError::InvalidState)?;
        let digest = sha256_hex(state.as_bytes());
        let payload = self
            .one_time
            .take(OneTimePurpose::OAuthState, &digest)
            .await?
            .ok_or(CallbackError::InvalidState)?;
        let pending: PendingLogin =
            serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let bound = binding.is_some_and(|b| {
            crate::crypto::constant_time_eq(
                sha256_hex(b.as_bytes()).as_bytes(),
                pending.binding_hash.as_bytes(),
            )
        });
        if !bound {
            tracing::warn!("sign-in callback not bound to the browser that started it");
            return Err(CallbackError::InvalidState);
        }
        Ok((digest, pending))
    }

    /// Exchanges the code (with the PKCE verifier) and reads the user's profile.
    async fn exchange(
        &self,
        code: SecretString,
        verifier: SecretString,
    ) -> Result<(TokenSet, UserProfile), CallbackError> {
        let tokens = self
            .auth_service
            .exchange_code(CodeExchange {
                code,
                code_verifier: verifier,
                redirect_uri: self.settings.redirect_uri.clone(),
            })
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "authorization code refused");
                CallbackError::TokenValidation(e)
            })?;
        let profile = self
            .auth_service
            .profile(&tokens.access_token)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "profile retrieval failed");
                CallbackError::Profile(e)
            })?;
        Ok((tokens, profile))
    }

    /// The user's tenant and whether the session is limited to onboarding (no tenant yet, or
    /// one not yet active). A suspended tenant may not sign in.
    async fn resolve_tenant(
        &self,
        user: &UserId,
    ) -> Result<(Option<TenantId>, bool), CallbackError> {
        let tenant = self.tenants.by_user(user).await.map_err(|e| {
            tracing::warn!(error = %e, user_id = %user, "tenant resolution failed");
            CallbackError::Tenant(e)
        })?;
        match tenant {
            Some(t) if t.status == TenantStatus::Suspended => Err(CallbackError::TenantSuspended),
            Some(t) => Ok((Some(t.id), t.status != TenantStatus::Active)),
            None => Ok((None, true)),
        }
    }

    /// Stores the session under a fresh ID.
    async fn create_session(&self, session: &Session) -> Result<SessionId, StoreError> {
        let session_id = SessionId::from_random(self.random.bytes::<32>());
        let key = session_id.key();
        self.sessions
            .create(&key, session, self.settings.session_ttl)
            .await?;
        tracing::info!(
            session = key.short(),
            user_id = %session.user_id,
            tenant_id = session.tenant_id.as_ref().map(tracing::field::display),
            onboarding_only = session.onboarding_only,
            "session created"
        );
        Ok(session_id)
    }
}

/// Genesys's `error` value, kept to a safe short token (`access_denied` when nothing is left).
fn provider_refusal(error: &str) -> CallbackError {
    let error: String = error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    tracing::warn!(%error, "identity provider refused the sign-in");
    CallbackError::Provider(if error.is_empty() {
        "access_denied".into()
    } else {
        error
    })
}

fn pending_context(state_digest: &str) -> EncryptionContext {
    EncryptionContext::purpose(&format!("login:{state_digest}"), "codeVerifier")
}

/// A post-login return path must be a local absolute path (no scheme, no `//host`).
fn is_safe_return_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && p.len() <= 512
        && !p.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_must_be_local() {
        assert!(is_safe_return_path("/dashboard"));
        assert!(is_safe_return_path("/history?page=2"));
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "dashboard",
            "/a\nb",
        ] {
            assert!(!is_safe_return_path(bad), "{bad}");
        }
    }
}
