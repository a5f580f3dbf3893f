//! The simulated Auth Service: authorization codes (issued by the login page), PKCE-checked
//! exchange, profiles and rotating refresh tokens.

use crate::demo::DemoUser;
use crate::platform::{AccessGrant, IssuedCode, SimState};
use async_trait::async_trait;
use portal_domain::DownstreamFailure;
use portal_domain::crypto::{constant_time_eq, pkce_challenge, sha256_hex};
use portal_domain::model::{UserId, UserProfile};
use portal_domain::ports::downstream::{AuthService, AuthServiceError, CodeExchange, TokenSet};
use portal_domain::secret::{ExposeSecret, SecretString};
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::Arc;
use time::Duration;

/// How long an issued authorization code may be exchanged.
pub const CODE_TTL: Duration = Duration::minutes(5);
/// Lifetime of an access token.
pub const ACCESS_TOKEN_TTL: Duration = Duration::hours(1);

/// Why the login page could not issue a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueCodeError {
    /// No demo user has this e-mail.
    #[error("unknown user")]
    UnknownUser,
    /// The system random source failed.
    #[error("random source unavailable")]
    Unavailable,
}

/// A random token (32 bytes, base64url) with a readable prefix.
pub(crate) fn random_token(prefix: &str) -> Option<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(format!("{prefix}{}", portal_domain::crypto::b64url(&bytes)))
}

fn unavailable() -> AuthServiceError {
    AuthServiceError::Failure(DownstreamFailure::Unavailable { status: None })
}

/// The simulated Auth Service.
#[derive(Debug, Clone)]
pub struct SimAuthService {
    state: Arc<SimState>,
}

impl SimAuthService {
    /// Over the shared state.
    pub fn new(state: Arc<SimState>) -> Self {
        Self { state }
    }

    /// The demo user with this e-mail, if any.
    pub fn user_by_email(&self, email: &str) -> Option<DemoUser> {
        self.state.user_by_email(email)
    }

    /// Issues a single-use authorization code for the user with `email`, bound to the PKCE
    /// `code_challenge` (S256) and `redirect_uri`. Valid for [`CODE_TTL`].
    pub fn issue_code(
        &self,
        email: &str,
        code_challenge: &str,
        redirect_uri: &str,
    ) -> Result<SecretString, IssueCodeError> {
        let user = self
            .state
            .user_by_email(email)
            .ok_or(IssueCodeError::UnknownUser)?;
        let code = random_token("sim_code_").ok_or(IssueCodeError::Unavailable)?;
        let issued = IssuedCode {
            user: user.id,
            code_challenge: code_challenge.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            expires_at: self.state.now() + CODE_TTL,
        };
        let now = self.state.now();
        let mut inner = self.state.lock();
        // Abandoned logins must not grow the map forever.
        inner.codes.retain(|_, c| c.expires_at > now);
        inner.codes.insert(sha256_hex(code.as_bytes()), issued);
        Ok(SecretString::from(code))
    }

    fn issue_tokens(&self, user: UserId) -> Result<TokenSet, AuthServiceError> {
        let access = random_token("sim_at_").ok_or_else(unavailable)?;
        let refresh = random_token("sim_rt_").ok_or_else(unavailable)?;
        let expires_at = self.state.now() + ACCESS_TOKEN_TTL;
        let now = self.state.now();
        let mut inner = self.state.lock();
        inner.access.retain(|_, g| g.expires_at > now);
        inner.access.insert(
            sha256_hex(access.as_bytes()),
            AccessGrant {
                user: user.clone(),
                expires_at,
            },
        );
        inner.refresh.insert(sha256_hex(refresh.as_bytes()), user);
        Ok(TokenSet {
            access_token: SecretString::from(access),
            refresh_token: Some(SecretString::from(refresh)),
            expires_at,
        })
    }
}

#[async_trait]
impl AuthService for SimAuthService {
    async fn exchange_code(&self, exchange: CodeExchange) -> Result<TokenSet, AuthServiceError> {
        let key = sha256_hex(exchange.code.expose_secret().as_bytes());
        // Removed on the first attempt, whatever its outcome: a code is single use.
        let issued = self
            .state
            .lock()
            .codes
            .remove(&key)
            .ok_or(AuthServiceError::InvalidGrant)?;
        let challenge = pkce_challenge(exchange.code_verifier.expose_secret());
        let valid = issued.expires_at > self.state.now()
            && issued.redirect_uri == exchange.redirect_uri
            && constant_time_eq(challenge.as_bytes(), issued.code_challenge.as_bytes());
        if !valid {
            return Err(AuthServiceError::InvalidGrant);
        }
        self.issue_tokens(issued.user)
    }

    async fn profile(&self, access_token: &SecretString) -> Result<UserProfile, AuthServiceError> {
        let key = sha256_hex(access_token.expose_secret().as_bytes());
        let now = self.state.now();
        let inner = self.state.lock();
        let grant = inner
            .access
            .get(&key)
            .filter(|g| g.expires_at > now)
            .ok_or(AuthServiceError::Unauthorized)?;
        let user = inner
            .users
            .get(&grant.user)
            .ok_or(AuthServiceError::Unauthorized)?;
        Ok(UserProfile {
            user_id: user.id.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
            tenant_id: inner.user_tenant.get(&user.id).copied(),
            role: user.role,
        })
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, AuthServiceError> {
        let key = sha256_hex(refresh_token.expose_secret().as_bytes());
        // Rotation: the presented refresh token stops working.
        let user = self
            .state
            .lock()
            .refresh
            .remove(&key)
            .ok_or(AuthServiceError::InvalidGrant)?;
        self.issue_tokens(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{ACME_ADMIN_EMAIL, ACME_ADMIN_ID, NEWCO_ADMIN_EMAIL, acme_tenant_id};
    use crate::test_support::{FixedClock, platform_at};
    use portal_domain::model::Role;
    use portal_domain::secret::secret;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const REDIRECT: &str = "http://127.0.0.1:8080/api/v1/auth/callback";

    fn exchange(code: &SecretString, verifier: &str, redirect: &str) -> CodeExchange {
        CodeExchange {
            code: secret(code.expose_secret()),
            code_verifier: secret(verifier),
            redirect_uri: redirect.to_owned(),
        }
    }

    #[tokio::test]
    async fn a_code_with_the_right_verifier_yields_tokens_for_the_user_once() {
        let (platform, _) = platform_at(FixedClock::demo_start());
        let auth = platform.auth();
        let code = auth
            .issue_code(ACME_ADMIN_EMAIL, &pkce_challenge(VERIFIER), REDIRECT)
            .unwrap();

        let tokens = auth
            .exchange_code(exchange(&code, VERIFIER, REDIRECT))
            .await
            .unwrap();
        let profile = auth.profile(&tokens.access_token).await.unwrap();
        assert_eq!(profile.user_id.as_str(), ACME_ADMIN_ID);
        assert_eq!(profile.role, Role::Admin);
        assert_eq!(profile.tenant_id, Some(acme_tenant_id()));

        // Single use: the same code again is refused.
        assert_eq!(
            auth.exchange_code(exchange(&code, VERIFIER, REDIRECT))
                .await
                .unwrap_err(),
            AuthServiceError::InvalidGrant
        );
    }

    #[tokio::test]
    async fn a_wrong_verifier_or_redirect_is_refused_and_burns_the_code() {
        let (platform, _) = platform_at(FixedClock::demo_start());
        let auth = platform.auth();
        let challenge = pkce_challenge(VERIFIER);

        let code = auth
            .issue_code(ACME_ADMIN_EMAIL, &challenge, REDIRECT)
            .unwrap();
        let wrong = "x".repeat(43);
        assert_eq!(
            auth.exchange_code(exchange(&code, &wrong, REDIRECT))
                .await
                .unwrap_err(),
            AuthServiceError::InvalidGrant
        );
        assert_eq!(
            auth.exchange_code(exchange(&code, VERIFIER, REDIRECT))
                .await
                .unwrap_err(),
            AuthServiceError::InvalidGrant,
            "a failed attempt consumes the code"
        );

        let code = auth
            .issue_code(ACME_ADMIN_EMAIL, &challenge, REDIRECT)
            .unwrap();
        assert_eq!(
            auth.exchange_code(exchange(&code, VERIFIER, "https://evil.example/cb"))
                .await
                .unwrap_err(),
            AuthServiceError::InvalidGrant
        );
        assert_eq!(
            auth.exchange_code(exchange(&secret("made-up"), VERIFIER, REDIRECT))
                .await
                .unwrap_err(),
            AuthServiceError::InvalidGrant
        );
    }

    #[tokio::test]
    async fn an_expired_code_is_refused() {
        let clock = FixedClock::demo_start();
        let (platform, clock) = platform_at(clock);
        let auth = platform.auth();
        let code = auth
            .issue_code(ACME_ADMIN_EMAIL, &pkce_challenge(VERIFIER), REDIRECT)
            .unwrap();
        clock.advance(CODE_TTL + Duration::seconds(1));
        assert_eq!(
            auth.exchange_code(exchange(&code, VERIFIER, REDIRECT))
                .await
                .unwrap_err(),
            AuthServiceError::InvalidGrant
        );
    }

    #[tokio::test]
    async fn unknown_users_get_no_code_and_unknown_tokens_no_profile() {
        let (platform, _) = platform_at(FixedClock::demo_start());
        let auth = platform.auth();
        assert_eq!(
            auth.issue_code("nobody@acme.example", "c", REDIRECT)
                .unwrap_err(),
            IssueCodeError::UnknownUser
        );
        assert_eq!(
            auth.profile(&secret("sim_at_nope")).await.unwrap_err(),
            AuthServiceError::Unauthorized
        );
    }

    #[tokio::test]
    async fn access_tokens_expire_after_an_hour_and_refresh_rotates() {
        let (platform, clock) = platform_at(FixedClock::demo_start());
        let auth = platform.auth();
        let code = auth
            .issue_code(NEWCO_ADMIN_EMAIL, &pkce_challenge(VERIFIER), REDIRECT)
            .unwrap();
        let tokens = auth
            .exchange_code(exchange(&code, VERIFIER, REDIRECT))
            .await
            .unwrap();
        let profile = auth.profile(&tokens.access_token).await.unwrap();
        assert_eq!(profile.tenant_id, None, "the onboarding user has no tenant");

        clock.advance(ACCESS_TOKEN_TTL);
        assert_eq!(
            auth.profile(&tokens.access_token).await.unwrap_err(),
            AuthServiceError::Unauthorized
        );

        let refresh = tokens.refresh_token.unwrap();
        let renewed = auth.refresh(&refresh).await.unwrap();
        assert!(auth.profile(&renewed.access_token).await.is_ok());
        assert_eq!(
            auth.refresh(&refresh).await.unwrap_err(),
            AuthServiceError::InvalidGrant,
            "the old refresh token was rotated out"
        );
        assert!(auth.refresh(&renewed.refresh_token.unwrap()).await.is_ok());
    }
}
