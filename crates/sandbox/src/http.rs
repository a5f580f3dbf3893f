//! The simulated Genesys login page: `GET /oauth/authorize`, which approves at once (no UI)
//! and redirects back with a single-use, PKCE-bound code, to a redirect URI registered for the
//! client only (RFC 6749 §3.1.2; an unregistered one is refused without a redirect, as a real
//! authorization server must, or the page would be an open redirector).

use crate::auth::{IssueCodeError, SimAuthService};
use crate::demo::DEFAULT_LOGIN_EMAIL;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use portal_domain::secret::ExposeSecret;
use std::collections::HashMap;
use std::sync::Arc;
use url::Url;

/// The one OAuth client the login page serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    /// Its client ID; any other is refused without a redirect.
    pub client_id: String,
    /// Where it may be sent back: compared as exact strings, except that a loopback entry
    /// without a port (`http://127.0.0.1/api/v1/auth/callback`, `http://[::1]/...`, and
    /// `http://localhost/...`, the service's default `BASE_URL` host) matches the same URI on
    /// any port, as RFC 8252 §7.3 asks of authorization servers.
    pub redirect_uris: Vec<String>,
}

impl RegisteredClient {
    /// Whether `uri` is one of the client's redirect URIs.
    fn may_redirect_to(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|registered| {
            registered == uri
                || (is_loopback_without_port(registered)
                    && Url::parse(uri)
                        .is_ok_and(|mut u| u.set_port(None).is_ok() && u.as_str() == registered))
        })
    }
}

fn is_loopback_without_port(uri: &str) -> bool {
    Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http"
            && u.port().is_none()
            && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
    })
}

/// Registers `GET /oauth/authorize` on `cfg` (mount it under a scope such as
/// `/_sandbox/genesys`) for `client`, the only client the page accepts.
pub fn genesys_login(
    cfg: &mut web::ServiceConfig,
    auth: Arc<SimAuthService>,
    client: RegisteredClient,
) {
    let login = Arc::new(Login { auth, client });
    // A resource with a GET route: any other method is a 405 with `Allow: GET`.
    cfg.service(
        web::resource("/oauth/authorize").route(web::get().to(move |req: HttpRequest| {
            let login = login.clone();
            async move { login.authorize(req.query_string()) }
        })),
    );
}

struct Login {
    auth: Arc<SimAuthService>,
    client: RegisteredClient,
}

fn bad_request(text: &'static str) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body(text)
}

fn redirect(mut to: Url, params: &[(&str, &str)]) -> HttpResponse {
    to.query_pairs_mut().extend_pairs(params);
    HttpResponse::Found()
        .insert_header((header::LOCATION, to.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// RFC 7636 §4.1: 43-128 characters of `[A-Za-z0-9-._~]`.
fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl Login {
    fn authorize(&self, query: &str) -> HttpResponse {
        let mut params: HashMap<String, String> = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            // OAuth parameters must not be repeated (RFC 6749 §3.1).
            if params.insert(k.into_owned(), v.into_owned()).is_some() {
                return bad_request("repeated parameter");
            }
        }
        let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());

        if get("client_id") != Some(self.client.client_id.as_str()) {
            return bad_request("unknown client_id");
        }
        let Some(redirect_uri) = get("redirect_uri") else {
            return bad_request("redirect_uri is required");
        };
        let target = match Url::parse(redirect_uri) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.fragment().is_none() => u,
            _ => return bad_request("redirect_uri must be an absolute http(s) URL"),
        };
        if !self.client.may_redirect_to(redirect_uri) {
            return bad_request("redirect_uri is not registered for this client");
        }
        if get("response_type") != Some("code") {
            return bad_request("response_type must be code");
        }
        let Some(state) = get("state") else {
            return bad_request("state is required");
        };
        let Some(challenge) = get("code_challenge").filter(|c| is_pkce_value(c)) else {
            return bad_request("code_challenge is required");
        };
        if get("code_challenge_method") != Some("S256") {
            return bad_request("code_challenge_method must be S256");
        }

        let email = get("login_hint").unwrap_or(DEFAULT_LOGIN_EMAIL);
        match self.auth.issue_code(email, challenge, redirect_uri) {
            Ok(code) => redirect(target, &[("code", code.expose_secret()), ("state", state)]),
            Err(IssueCodeError::UnknownUser) => {
                redirect(target, &[("error", "access_denied"), ("state", state)])
            }
            Err(IssueCodeError::Unavailable) => {
                redirect(target, &[("error", "server_error"), ("state", state)])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{ACME_ADMIN_ID, GLOBEX_ADMIN_ID};
    use crate::test_support::{demo_start, platform_at};
    use actix_web::{App, test};
    use portal_domain::crypto::pkce_challenge;
    use portal_domain::ports::downstream::{AuthService, CodeExchange};
    use portal_domain::secret::secret;

    const CLIENT: &str = "portal-client";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CALLBACK: &str = "http://127.0.0.1:8080/api/v1/auth/callback";

    fn authorize_uri(extra: &[(&str, &str)], skip: &[&str]) -> String {
        let challenge = pkce_challenge(VERIFIER);
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("redirect_uri", CALLBACK),
            ("state", "st-123"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ] {
            if !skip.contains(&k) {
                q.append_pair(k, v);
            }
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        format!("/_sandbox/genesys/oauth/authorize?{}", q.finish())
    }

    async fn call(
        auth: Arc<SimAuthService>,
        uri: &str,
    ) -> (actix_web::http::StatusCode, Option<Url>, String) {
        let app = test::init_service(App::new().service(
            web::scope("/_sandbox/genesys").configure(|cfg| {
                genesys_login(
                    cfg,
                    auth,
                    RegisteredClient {
                        client_id: CLIENT.to_owned(),
                        redirect_uris: vec![CALLBACK.to_owned(), "http://[::1]/cb".to_owned()],
                    },
                )
            }),
        ))
        .await;
        let resp = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        let status = resp.status();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Url::parse(v).ok());
        let body = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
        (status, location, body)
    }

    fn param(url: &Url, key: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    async fn user_of(auth: &SimAuthService, code: String) -> String {
        let tokens = auth
            .exchange_code(CodeExchange {
                code: secret(code),
                code_verifier: secret(VERIFIER),
                redirect_uri: CALLBACK.to_owned(),
            })
            .await
            .unwrap();
        auth.profile(&tokens.access_token)
            .await
            .unwrap()
            .user_id
            .to_string()
    }

    #[actix_web::test]
    async fn approves_at_once_and_redirects_with_a_code_for_the_default_user() {
        let (platform, _) = platform_at(demo_start());
        let auth = platform.auth();
        let (status, location, _) = call(auth.clone(), &authorize_uri(&[], &[])).await;
        assert_eq!(status, 302);
        let location = location.unwrap();
        assert!(location.as_str().starts_with(CALLBACK));
        assert_eq!(param(&location, "state").as_deref(), Some("st-123"));
        let code = param(&location, "code").unwrap();
        assert_eq!(user_of(&auth, code).await, ACME_ADMIN_ID);
    }

    #[actix_web::test]
    async fn login_hint_picks_the_user_and_unknown_hints_are_denied() {
        let (platform, _) = platform_at(demo_start());
        let auth = platform.auth();
        let (_, location, _) = call(
            auth.clone(),
            &authorize_uri(&[("login_hint", "admin@globex.example")], &[]),
        )
        .await;
        let code = param(&location.unwrap(), "code").unwrap();
        assert_eq!(user_of(&auth, code).await, GLOBEX_ADMIN_ID);

        let (status, location, _) = call(
            auth,
            &authorize_uri(&[("login_hint", "mallory@evil.example")], &[]),
        )
        .await;
        assert_eq!(status, 302);
        let location = location.unwrap();
        assert_eq!(param(&location, "error").as_deref(), Some("access_denied"));
        assert_eq!(param(&location, "state").as_deref(), Some("st-123"));
        assert_eq!(param(&location, "code"), None);
    }

    #[actix_web::test]
    async fn a_loopback_redirect_uri_without_a_port_matches_any_port_and_nothing_else() {
        let client = RegisteredClient {
            client_id: CLIENT.to_owned(),
            redirect_uris: vec![
                "http://127.0.0.1/api/v1/auth/callback".to_owned(),
                "https://portal.example/api/v1/auth/callback".to_owned(),
            ],
        };
        assert!(client.may_redirect_to("http://127.0.0.1:8081/api/v1/auth/callback"));
        assert!(client.may_redirect_to("http://127.0.0.1/api/v1/auth/callback"));
        assert!(client.may_redirect_to("https://portal.example/api/v1/auth/callback"));
        for refused in [
            "https://portal.example:8443/api/v1/auth/callback",
            "https://portal.example/api/v1/auth/callback?x=1",
            "http://127.0.0.1:8081/api/v1/auth/other",
            "http://localhost:8081/api/v1/auth/callback",
            "http://127.0.0.2:8081/api/v1/auth/callback",
            "https://127.0.0.1:8081/api/v1/auth/callback",
            "http://evil.example/api/v1/auth/callback",
        ] {
            assert!(!client.may_redirect_to(refused), "{refused}");
        }
        let local = RegisteredClient {
            client_id: CLIENT.to_owned(),
            redirect_uris: vec!["http://localhost/api/v1/auth/callback".to_owned()],
        };
        assert!(local.may_redirect_to("http://localhost:8081/api/v1/auth/callback"));
        assert!(!local.may_redirect_to("http://127.0.0.1:8081/api/v1/auth/callback"));
        assert!(!local.may_redirect_to("http://localhost.evil.example:8081/api/v1/auth/callback"));
    }

    #[actix_web::test]
    async fn other_methods_are_405_with_allow() {
        let (platform, _) = platform_at(demo_start());
        let app = test::init_service(App::new().service(
            web::scope("/_sandbox/genesys").configure(|cfg| {
                genesys_login(
                    cfg,
                    platform.auth(),
                    RegisteredClient {
                        client_id: CLIENT.to_owned(),
                        redirect_uris: vec![CALLBACK.to_owned()],
                    },
                )
            }),
        ))
        .await;
        let req = test::TestRequest::post()
            .uri("/_sandbox/genesys/oauth/authorize")
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers().get(header::ALLOW).unwrap(), "GET");
    }

    #[actix_web::test]
    async fn malformed_requests_get_400_and_no_redirect() {
        let (platform, _) = platform_at(demo_start());
        let auth = platform.auth();
        let cases: Vec<(String, &str)> = vec![
            (authorize_uri(&[], &["state"]), "state"),
            (authorize_uri(&[], &["code_challenge"]), "code_challenge"),
            (authorize_uri(&[], &["code_challenge_method"]), "S256"),
            (
                authorize_uri(
                    &[("code_challenge_method", "plain")],
                    &["code_challenge_method"],
                ),
                "S256",
            ),
            (
                authorize_uri(&[("response_type", "token")], &["response_type"]),
                "response_type",
            ),
            (
                authorize_uri(&[("client_id", "someone-else")], &["client_id"]),
                "client_id",
            ),
            (authorize_uri(&[], &["redirect_uri"]), "redirect_uri"),
            (
                authorize_uri(
                    &[("redirect_uri", "javascript:alert(1)")],
                    &["redirect_uri"],
                ),
                "redirect_uri",
            ),
            (authorize_uri(&[("state", "again")], &[]), "repeated"),
            (
                authorize_uri(
                    &[("redirect_uri", "https://evil.example/steal")],
                    &["redirect_uri"],
                ),
                "not registered",
            ),
            (
                authorize_uri(
                    &[(
                        "redirect_uri",
                        "http://127.0.0.1:8080/api/v1/auth/callback/../x",
                    )],
                    &["redirect_uri"],
                ),
                "not registered",
            ),
            (
                authorize_uri(
                    &[("redirect_uri", "http://127.0.0.1:9999/api/v1/auth/callback")],
                    &["redirect_uri"],
                ),
                "not registered",
            ),
        ];
        for (uri, expected) in cases {
            let (status, location, body) = call(auth.clone(), &uri).await;
            assert_eq!(status, 400, "{uri}");
            assert!(location.is_none(), "{uri}");
            assert!(body.contains(expected), "{uri}: {body}");
        }
    }
}
