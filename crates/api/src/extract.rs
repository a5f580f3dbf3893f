//! Extractors: the request's context (what the audit trail records), the authenticated
//! session (with CSRF, the API rate limit, the tenant guard and the JSON body), the sign-in
//! rate limit, and the signed-cookie helpers. The refusals decided here (CSRF, the sign-in
//! limit) are audited here.

use crate::body::JsonObject;
use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::state::{AppState, LOGIN_COOKIE, SESSION_COOKIE, WebSettings};
use crate::tenant_guard;
use actix_web::cookie::{Cookie, CookieJar, SameSite, time::Duration as CookieDuration};
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use portal_domain::audit::{AuditAction, AuditEvent, AuditOutcome};
use portal_domain::auth::{Capability, CurrentSession};
use portal_domain::model::{RequestContext, TenantId};
use portal_domain::ports::stores::{RateDecision, RatePolicy};
use portal_domain::secret::{ExposeSecret, SecretString};
use std::future::Future;
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

/// What the audit trail records of the request: client IP, user agent, request ID.
pub(crate) fn request_context(req: &HttpRequest, web: &WebSettings) -> RequestContext {
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let extensions = req.extensions();
    let request_id = extensions.get::<RequestId>().map(|r| r.0.as_str());
    RequestContext::new(
        crate::forwarded::client_ip(req, web),
        user_agent,
        request_id,
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
        Err(ApiError::rate_limited(decision))
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
    Some(
        CookieJar::new()
            .signed(&web.cookie_key)
            .verify(raw.into_owned())
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

/// An authenticated request: a live session, CSRF checked for state-changing methods, the
/// per-user API rate limit applied, the tenant guard passed, and, for a state-changing method,
/// its JSON object body read (`crate::body`'s rules).
///
/// Refusals, in this order: no cookie → 401 `NO_SESSION`; bad signature, unknown or expired
/// → 401 `SESSION_EXPIRED` (and the cookie is cleared); store down → 503 (fail closed);
/// missing or wrong `X-CSRF-Token` → 403 `CSRF_FAILED`; over the limit → 429; another
/// tenant in the path or query → 403 `TENANT_ISOLATION_VIOLATION`; then the body: 415, 413,
/// 400, and another tenant in it → 403.
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// The session.
    pub current: CurrentSession,
    /// The raw cookie value, to re-issue the cookie when the session is extended.
    raw_id: SecretString,
    /// The JSON object body of a state-changing request (`None`: no body, or a safe method).
    pub body: Option<JsonObject>,
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

async fn authenticate(req: HttpRequest, payload: Payload) -> Result<Authenticated, ApiError> {
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
    let current = current.with_context(request_context(&req, web));
    let span = tracing::Span::current();
    span.record("user_id", tracing::field::display(&current.session.user_id));
    if let Some(tenant) = &current.session.tenant_id {
        span.record("tenant_id", tracing::field::display(tenant));
    }
    let state_changing = needs_csrf(req.method());
    if state_changing {
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
            state.auditor().record(
                AuditEvent::by(&current, AuditAction::CsrfRefused, AuditOutcome::Refused)
                    .detail("method", req.method().as_str())
                    .detail("route", req.match_pattern().unwrap_or_default())
                    .detail("tokenPresent", presented.is_some()),
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
    tenant_guard::check_request(&req, &current)?;
    let body = if state_changing {
        crate::body::read_object(&req, payload, web.body_limit).await?
    } else {
        None
    };
    if let Some(body) = &body {
        tenant_guard::check_body(&req, &current, body)?;
    }
    Ok(Authenticated {
        current,
        raw_id: raw,
        body,
    })
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone(), payload.take()))
    }
}

/// The sign-in rate-limit key of the request's client IP.
fn auth_rate_key(req: &HttpRequest, state: &AppState) -> String {
    let ip = crate::forwarded::client_ip(req, state.web())
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into());
    format!("auth:{ip}")
}

/// The sign-in rate limit (10 per 15 minutes per client IP), counted once per sign-in: by
/// `/auth/login`, which starts it. The callback that completes a sign-in costs nothing; a
/// failed one counts ([`count_failed_sign_in`]), so the callback cannot be tried at will.
#[derive(Debug)]
pub(crate) struct AuthRateLimited;

impl FromRequest for AuthRateLimited {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            let key = auth_rate_key(&req, &state);
            let limited = apply_limit(&req, &state, "auth", &key, state.limits().auth).await;
            if limited.is_err() {
                state.auditor().record(
                    AuditEvent::anonymous(
                        AuditAction::SignInRateLimited,
                        AuditOutcome::Refused,
                        &request_context(&req, state.web()),
                    )
                    .detail("route", req.match_pattern().unwrap_or_default()),
                );
            }
            limited.map(|()| AuthRateLimited)
        })
    }
}

/// Counts a failed callback against the sign-in limit; past the limit, the answer is 429
/// (with the sign-in limit's headers) instead of the failure's.
pub(crate) async fn count_failed_sign_in(
    req: &HttpRequest,
    state: &AppState,
) -> Result<(), ApiError> {
    let key = auth_rate_key(req, state);
    apply_limit(req, state, "auth", &key, state.limits().auth).await
}
