//! Extractors: the client IP, the authenticated session (with CSRF and the API rate limit),
//! the sign-in rate limit, and the signed-cookie helpers.

use crate::error::ApiError;
use crate::state::{AppState, LOGIN_COOKIE, SESSION_COOKIE, WebSettings};
use actix_web::cookie::{Cookie, CookieJar, SameSite, time::Duration as CookieDuration};
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use portal_domain::auth::{Capability, CurrentSession};
use portal_domain::model::TenantId;
use portal_domain::ports::stores::{RateDecision, RatePolicy};
use portal_domain::secret::{ExposeSecret, SecretString};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// The last rate-limit decision of the request, turned into `RateLimit-*` headers by the
/// middleware.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateInfo(pub(crate) RateDecision);

pub(crate) fn app_state(req: &HttpRequest) -> Result<AppState, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .map(|d| d.get_ref().clone())
        .ok_or_else(|| ApiError::internal("AppState missing from app data"))
}

/// The client's IP: the peer address, or — only when the peer is a trusted proxy — the
/// right-most untrusted address of `X-Forwarded-For`.
pub(crate) fn client_ip(req: &HttpRequest, web: &WebSettings) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted = |ip: IpAddr| web.trusted_proxies.iter().any(|p| p.contains(ip));
    if !trusted(peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    Some(
        forwarded
            .iter()
            .rev()
            .copied()
            .find(|ip| !trusted(*ip))
            .or_else(|| forwarded.first().copied())
            .unwrap_or(peer),
    )
}

/// Applies a rate limit; records the decision for the response headers. A limiter-store
/// failure lets the request through with a warning: the limiter protects capacity, and
/// refusing every sign-in while the store hiccups is worse than a few extra requests. Session
/// checks, by contrast, fail closed.
pub(crate) async fn apply_limit(
    req: &HttpRequest,
    state: &AppState,
    scope: &'static str,
    key: &str,
    policy: RatePolicy,
) -> Result<(), ApiError> {
    match state.limiter().hit(key, policy, 1).await {
        Ok(decision) => enforce(req, state, scope, decision),
        Err(e) => {
            tracing::warn!(scope, error = %e, "rate limiter unavailable; allowing request");
            Ok(())
        }
    }
}

/// Records a decision for the response headers and refuses the request when it says so.
fn enforce(
    req: &HttpRequest,
    state: &AppState,
    scope: &'static str,
    decision: RateDecision,
) -> Result<(), ApiError> {
    req.extensions_mut().insert(RateInfo(decision));
    if decision.allowed {
        Ok(())
    } else {
        state.telemetry().rate_limited(scope);
        tracing::warn!(scope, "rate limit exceeded");
        Err(ApiError::rate_limited(decision.reset_after))
    }
}

/// The per-user API rate-limit key (spec §12.1: 100/min per user, shared by every instance).
pub(crate) fn api_rate_key(user: &portal_domain::model::UserId) -> String {
    format!("api:{user}")
}

/// Reads a signed cookie's value; `Err(())` when present but its signature is wrong.
pub(crate) fn signed_cookie(
    req: &HttpRequest,
    web: &WebSettings,
    name: &str,
) -> Option<Result<SecretString, ()>> {
    let raw = req.cookie(name)?;
    let mut jar = CookieJar::new();
    jar.add_original(raw.into_owned());
    Some(
        jar.signed(&web.cookie_key)
            .get(name)
            .map(|c| SecretString::from(c.value().to_owned()))
            .ok_or(()),
    )
}

fn build_cookie(
    web: &WebSettings,
    name: &'static str,
    value: &str,
    path: &'static str,
    same_site: SameSite,
    max_age: CookieDuration,
) -> Cookie<'static> {
    let mut jar = CookieJar::new();
    let mut c = Cookie::new(name, value.to_owned());
    c.set_http_only(true);
    c.set_secure(web.secure_cookies);
    c.set_same_site(same_site);
    c.set_path(path);
    c.set_max_age(max_age);
    if let Some(d) = &web.cookie_domain {
        c.set_domain(d.clone());
    }
    jar.signed_mut(&web.cookie_key).add(c);
    // The jar now holds the cookie with its signed value.
    jar.delta()
        .next()
        .cloned()
        .unwrap_or_else(|| Cookie::new(name, ""))
}

fn removal_cookie(web: &WebSettings, name: &'static str, path: &'static str) -> Cookie<'static> {
    let mut c = Cookie::new(name, "");
    c.set_path(path);
    c.set_http_only(true);
    c.set_secure(web.secure_cookies);
    if let Some(d) = &web.cookie_domain {
        c.set_domain(d.clone());
    }
    c.make_removal();
    c
}

/// The session cookie: HttpOnly, Secure (unless disabled), SameSite=Strict, signed, 24 h.
pub(crate) fn session_cookie(web: &WebSettings, id: &str, max_age_secs: i64) -> Cookie<'static> {
    build_cookie(
        web,
        SESSION_COOKIE,
        id,
        "/",
        SameSite::Strict,
        CookieDuration::seconds(max_age_secs),
    )
}

/// Expires the session cookie.
pub(crate) fn session_cookie_removal(web: &WebSettings) -> Cookie<'static> {
    removal_cookie(web, SESSION_COOKIE, "/")
}

/// The pre-login cookie: SameSite=Lax (it must come back on Genesys's cross-site redirect),
/// signed, 5 minutes, only sent to the auth routes.
pub(crate) fn login_cookie(web: &WebSettings, binding: &str) -> Cookie<'static> {
    build_cookie(
        web,
        LOGIN_COOKIE,
        binding,
        "/api/v1/auth",
        SameSite::Lax,
        CookieDuration::seconds(300),
    )
}

/// Expires the pre-login cookie.
pub(crate) fn login_cookie_removal(web: &WebSettings) -> Cookie<'static> {
    removal_cookie(web, LOGIN_COOKIE, "/api/v1/auth")
}

/// An authenticated request: a live session, CSRF checked for state-changing methods, and the
/// per-user API rate limit applied.
///
/// Refusals: no cookie → 401 `NO_SESSION`; bad signature, unknown or expired → 401
/// `SESSION_EXPIRED` (and the cookie is cleared); store down → 503 (fail closed); missing or
/// wrong `X-CSRF-Token` → 403 `CSRF_FAILED`; over the limit → 429.
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// The session.
    pub current: CurrentSession,
    /// The raw cookie value, to re-issue the cookie when the session is extended.
    raw_id: SecretString,
}

impl Authenticated {
    /// Checks a capability (role, onboarding); 403 `FORBIDDEN` otherwise. Returns the tenant
    /// the session acts for.
    pub(crate) fn require(&self, capability: Capability) -> Result<Option<TenantId>, ApiError> {
        Ok(self.current.authorize(capability)?)
    }

    pub(crate) fn raw_id(&self) -> &str {
        self.raw_id.expose_secret()
    }
}

fn needs_csrf(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

async fn authenticate(req: HttpRequest) -> Result<Authenticated, ApiError> {
    let state = app_state(&req)?;
    let web = state.web();
    let raw = match signed_cookie(&req, web, SESSION_COOKIE) {
        None => return Err(ApiError::no_session()),
        Some(Err(())) => {
            tracing::info!("session cookie with a bad signature");
            return Err(ApiError::session_expired().with_cookie(session_cookie_removal(web)));
        }
        Some(Ok(raw)) => raw,
    };
    // From the second request of a session on this instance, the API rate-limit hit rides in
    // the session read's round trip and its decision comes back here; otherwise (`None`) the
    // limit is applied below with its own round trip.
    let api_policy = state.limits().api;
    let (current, piggybacked) = match state
        .auth()
        .authenticate_limited(raw.expose_secret(), api_rate_key, api_policy)
        .await
    {
        Ok(c) => c,
        Err(portal_domain::auth::SessionError::Expired) => {
            return Err(ApiError::session_expired().with_cookie(session_cookie_removal(web)));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::Span::current().record("user_id", tracing::field::display(&current.session.user_id));
    if let Some(tenant) = &current.session.tenant_id {
        tracing::Span::current().record("tenant_id", tracing::field::display(tenant));
    }
    if needs_csrf(req.method()) {
        let presented = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok());
        if !state.auth().verify_csrf(&current, presented) {
            tracing::warn!(
                security_event = "csrf_failed",
                user_id = %current.session.user_id,
                present = presented.is_some(),
                "CSRF check failed"
            );
            return Err(ApiError::csrf_failed());
        }
    }
    match piggybacked {
        Some(decision) => enforce(&req, &state, "api", decision)?,
        None => {
            let key = api_rate_key(&current.session.user_id);
            apply_limit(&req, &state, "api", &key, api_policy).await?;
        }
    }
    Ok(Authenticated {
        current,
        raw_id: raw,
    })
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

/// The sign-in rate limit (10 per 15 minutes per client IP), for `/auth/login` and
/// `/auth/callback`.
#[derive(Debug)]
pub(crate) struct AuthRateLimited;

impl FromRequest for AuthRateLimited {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            let ip = client_ip(&req, state.web())
                .map(|ip| ip.to_string())
                .unwrap_or_else(|| "unknown".into());
            let key = format!("auth:{ip}");
            apply_limit(&req, &state, "auth", &key, state.limits().auth).await?;
            Ok(AuthRateLimited)
        })
    }
}
