//! The simulated Auth Service: authorization codes (issued by the login page), PKCE-checked
//! exchange, profiles and rotating refresh tokens.
//!
//! It holds only what it must. Access and refresh tokens are signed (HMAC-SHA256 with a key
//! of this process), carrying their user and expiry, so a sign-in leaves nothing behind once
//! its code is exchanged: signing in and out any number of times does not grow the
//! simulator. What it does keep expires: a pending code (until exchanged, or [`CODE_TTL`]),
//! and a spent refresh token (until its own expiry, so a rotated-out token stays refused).

use crate::platform::{IssuedCode, SimState};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portal_domain::DownstreamFailure;
use portal_domain::crypto::{TokenDeriver, b64url, constant_time_eq, pkce_challenge, sha256_hex};
use portal_domain::model::{UserId, UserProfile};
use portal_domain::ports::downstream::{AuthService, AuthServiceError, CodeExchange, TokenSet};
use portal_domain::secret::{ExposeSecret, SecretString};
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// How long an issued authorization code may be exchanged.
pub(crate) const CODE_TTL: Duration = Duration::minutes(5);
/// Lifetime of an access token.
pub(crate) const ACCESS_TOKEN_TTL: Duration = Duration::hours(1);
/// Lifetime of a refresh token (longer than any session the service keeps by default; each
/// refresh hands out a new one).
pub(crate) const REFRESH_TOKEN_TTL: Duration = Duration::days(30);

/// Why the login page could not issue a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IssueCodeError {
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

/// The two kinds of signed token.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Access,
    Refresh,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Access => "sim_at_",
            Kind::Refresh => "sim_rt_",
        }
    }
    /// Signing purpose: an access token never passes as a refresh token, nor the reverse.
    fn purpose(self) -> &'static str {
        match self {
            Kind::Access => "sim-access-token",
            Kind::Refresh => "sim-refresh-token",
        }
    }
}

/// What a valid token grants.
struct Grant {
    user: UserId,
    expires_at: OffsetDateTime,
}

/// The simulated Auth Service.
#[derive(Debug, Clone)]
pub struct SimAuthService {
    state: Arc<SimState>,
    /// Signs and checks the tokens (a key of this process: tokens die with it).
    signer: TokenDeriver,
}

impl SimAuthService {
    /// Over the shared state, with a fresh signing key.
    pub fn new(state: Arc<SimState>) -> Self {
        let key = [
            *uuid::Uuid::new_v4().as_bytes(),
            *uuid::Uuid::new_v4().as_bytes(),
        ]
        .concat();
        Self {
            state,
            signer: TokenDeriver::new(&key),
        }
    }

    /// How many sign-in records the simulator holds: codes waiting for their exchange and
    /// spent refresh tokens not yet expired. Tokens in use are not stored.
    #[cfg(test)]
    fn stored_grants(&self) -> usize {
        let inner = self.state.lock();
        inner.codes.len() + inner.spent_refresh.len()
    }

    /// Issues a single-use authorization code for the user with `email`, bound to the PKCE
    /// `code_challenge` (S256) and `redirect_uri`. Valid for [`CODE_TTL`].
    pub(crate) fn issue_code(
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
        let now = self.state.now();
        let issued = IssuedCode {
            user: user.id,
            code_challenge: code_challenge.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            expires_at: now + CODE_TTL,
        };
        let mut inner = self.state.lock();
        // Abandoned logins must not grow the map forever.
        inner.codes.retain(|_, c| c.expires_at > now);
        inner.codes.insert(sha256_hex(code.as_bytes()), issued);
        Ok(SecretString::from(code))
    }

    /// A token of `kind` for `user`, valid `ttl` from now (whole seconds): `prefix` +
    /// `user.expiry.nonce` + `.` + signature. The nonce makes every token unique.
    fn sign(&self, kind: Kind, user: &UserId, ttl: Duration) -> Option<(String, OffsetDateTime)> {
        let expires_at = (self.state.now() + ttl).replace_nanosecond(0).ok()?;
        let claims = format!(
            "{}.{}.{}",
            b64url(user.as_str().as_bytes()),
            expires_at.unix_timestamp(),
            random_token("")?
        );
        let signature = self.signer.derive(kind.purpose(), claims.as_bytes());
        Some((format!("{}{claims}.{signature}", kind.prefix()), expires_at))
    }

    /// The grant of a token of `kind` that this simulator signed and that has not expired.
    fn verify(&self, kind: Kind, token: &str) -> Option<Grant> {
        let (claims, signature) = token.strip_prefix(kind.prefix())?.rsplit_once('.')?;
        if !self
            .signer
            .verify(kind.purpose(), claims.as_bytes(), signature)
        {
            return None;
        }
        let mut parts = claims.split('.');
        let user = String::from_utf8(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
        let expires_at = OffsetDateTime::from_unix_timestamp(parts.next()?.parse().ok()?).ok()?;
        (expires_at > self.state.now()).then_some(Grant {
            user: UserId::parse(user).ok()?,
            expires_at,
        })
    }

    fn issue_tokens(&self, user: &UserId) -> Result<TokenSet, AuthServiceError> {
        let (access, expires_at) = self
            .sign(Kind::Access, user, ACCESS_TOKEN_TTL)
            .ok_or_else(unavailable)?;
        let (refresh, _) = self
            .sign(Kind::Refresh, user, REFRESH_TOKEN_TTL)
            .ok_or_else(unavailable)?;
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
        self.issue_tokens(&issued.user)
    }

    async fn profile(&self, access_token: &SecretString) -> Result<UserProfile, AuthServiceError> {
        let grant = self
            .verify(Kind::Access, access_token.expose_secret())
            .ok_or(AuthServiceError::Unauthorized)?;
        let inner = self.state.lock();
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
        let grant = self
            .verify(Kind::Refresh, refresh_token.expose_secret())
            .ok_or(AuthServiceError::InvalidGrant)?;
        let now = self.state.now();
        {
            // Rotation: the presented refresh token stops working. Remembered until it would
            // have expired anyway, then forgotten.
            let mut inner = self.state.lock();
            inner
                .spent_refresh
                .retain(|_, expires_at| *expires_at > now);
            let key = sha256_hex(refresh_token.expose_secret().as_bytes());
            if inner.spent_refresh.insert(key, grant.expires_at).is_some() {
                return Err(AuthServiceError::InvalidGrant);
            }
        }
        self.issue_tokens(&grant.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{ACME_ADMIN_EMAIL, ACME_ADMIN_ID, NEWCO_ADMIN_EMAIL, acme_tenant_id};
    use crate::test_support::{demo_start, platform_at};
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

    /// A sign-in as the service makes it: a code from the login page, then its exchange.
    async fn signed_in(auth: &SimAuthService) -> TokenSet {
        let code = auth
            .issue_code(ACME_ADMIN_EMAIL, &pkce_challenge(VERIFIER), REDIRECT)
            .unwrap();
        auth.exchange_code(exchange(&code, VERIFIER, REDIRECT))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_code_with_the_right_verifier_yields_tokens_for_the_user_once() {
        let (platform, _) = platform_at(demo_start());
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
        let (platform, _) = platform_at(demo_start());
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
        let clock = demo_start();
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
        let (platform, _) = platform_at(demo_start());
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
        let (platform, clock) = platform_at(demo_start());
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

    #[tokio::test]
    async fn signing_in_and_out_many_times_leaves_nothing_stored() {
        let (platform, clock) = platform_at(demo_start());
        let auth = platform.auth();
        let challenge = pkce_challenge(VERIFIER);
        for _ in 0..500 {
            // What the service does per sign-in: a code from the login page, its exchange,
            // the profile. (Logging out never reaches the Auth Service.)
            let code = auth
                .issue_code(ACME_ADMIN_EMAIL, &challenge, REDIRECT)
                .unwrap();
            assert_eq!(auth.stored_grants(), 1, "the pending code");
            let tokens = auth
                .exchange_code(exchange(&code, VERIFIER, REDIRECT))
                .await
                .unwrap();
            auth.profile(&tokens.access_token).await.unwrap();
            assert_eq!(auth.stored_grants(), 0, "nothing per signed-in user");
        }

        // Refreshes remember the token they rotated out, only until it would have expired.
        let mut refresh = signed_in(&auth).await.refresh_token.unwrap();
        for _ in 0..3 {
            refresh = auth.refresh(&refresh).await.unwrap().refresh_token.unwrap();
        }
        assert_eq!(auth.stored_grants(), 3);
        clock.advance(REFRESH_TOKEN_TTL);
        assert!(auth.refresh(&refresh).await.is_err(), "expired");
        let tokens = signed_in(&auth).await;
        auth.refresh(&tokens.refresh_token.unwrap()).await.unwrap();
        assert_eq!(auth.stored_grants(), 1, "the expired spent tokens are gone");

        // Abandoned logins go with their code's expiry.
        for _ in 0..50 {
            auth.issue_code(ACME_ADMIN_EMAIL, &challenge, REDIRECT)
                .unwrap();
        }
        clock.advance(CODE_TTL + Duration::seconds(1));
        auth.issue_code(ACME_ADMIN_EMAIL, &challenge, REDIRECT)
            .unwrap();
        assert_eq!(
            auth.stored_grants(),
            2,
            "one code and one spent refresh token"
        );
    }

    #[tokio::test]
    async fn tokens_are_only_good_for_their_kind_and_unforgeable() {
        let (platform, _) = platform_at(demo_start());
        let auth = platform.auth();
        let tokens = signed_in(&auth).await;
        let access = tokens.access_token.expose_secret().to_owned();
        let refresh = tokens.refresh_token.unwrap().expose_secret().to_owned();
        assert_eq!(
            auth.refresh(&secret(&access)).await.unwrap_err(),
            AuthServiceError::InvalidGrant,
            "an access token is no refresh token"
        );
        assert_eq!(
            auth.profile(&secret(&refresh)).await.unwrap_err(),
            AuthServiceError::Unauthorized,
            "nor the reverse"
        );
        // Another user's ID under the same signature, or the token of another simulator.
        let forged = access.replacen(
            &b64url(ACME_ADMIN_ID.as_bytes()),
            &b64url(b"someone-else"),
            1,
        );
        assert_ne!(forged, access);
        assert_eq!(
            auth.profile(&secret(&forged)).await.unwrap_err(),
            AuthServiceError::Unauthorized
        );
        let (other, _) = platform_at(demo_start());
        assert_eq!(
            other.auth().profile(&secret(&access)).await.unwrap_err(),
            AuthServiceError::Unauthorized
        );
    }
}
