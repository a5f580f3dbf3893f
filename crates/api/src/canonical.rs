//! [`CanonicalHost`]: a sign-in started on another name of this machine than the one
//! `BASE_URL` uses (`http://127.0.0.1:8080/...` while `BASE_URL` is `http://localhost:8080`)
//! is sent to the same path on `BASE_URL` first. Otherwise the pre-login cookie would be set
//! for the first name while Genesys returns the browser to the second, and the callback could
//! only answer 400 `INVALID_STATE`.
//!
//! Local use only: both names must be loopback names (`localhost`, `127.0.0.0/8`, `::1`), so
//! a deployment behind a proxy, whose public host is never a loopback name, is never
//! redirected.

use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use std::future::{Ready, ready};
use url::Url;

/// Passes when the request came to `BASE_URL`'s host name (or either is not a loopback name);
/// otherwise answers 302 to the same path and query on `BASE_URL`, before any rate limit
/// counts the attempt (put it before `AuthRateLimited`).
#[derive(Debug)]
pub(crate) struct CanonicalHost;

impl FromRequest for CanonicalHost {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let location = req
            .app_data::<web::Data<AppState>>()
            .and_then(|state| canonical_location(req, &state.web().public_url));
        ready(match location {
            None => Ok(CanonicalHost),
            Some(location) => {
                let res = HttpResponse::Found()
                    .insert_header((header::LOCATION, location))
                    .finish();
                Err(InternalError::from_response("not the canonical host name", res).into())
            }
        })
    }
}

fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_matches(|c| c == '[' || c == ']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Where a request to a loopback name other than `public`'s belongs, if it does.
fn canonical_location(req: &HttpRequest, public: &Url) -> Option<String> {
    let asked = req.headers().get(header::HOST)?.to_str().ok()?;
    let asked_host = match asked.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => asked,
    };
    let public_host = public.host_str()?;
    let same = asked_host
        .trim_matches(|c| c == '[' || c == ']')
        .eq_ignore_ascii_case(public_host.trim_matches(|c| c == '[' || c == ']'));
    if same || !is_loopback_name(asked_host) || !is_loopback_name(public_host) {
        return None;
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    Some(format!("{}{path}", public.as_str().trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn location(host: &str, public: &str) -> Option<String> {
        let req = TestRequest::get()
            .uri("/api/v1/auth/login?login_hint=a@b.example")
            .insert_header((header::HOST, host))
            .to_http_request();
        canonical_location(&req, &Url::parse(public).unwrap())
    }

    #[test]
    fn another_local_name_goes_to_the_public_one() {
        assert_eq!(
            location("127.0.0.1:8080", "http://localhost:8080").as_deref(),
            Some("http://localhost:8080/api/v1/auth/login?login_hint=a@b.example")
        );
        assert!(location("[::1]:8080", "http://localhost:8080").is_some());
        assert!(location("localhost:8080", "http://127.0.0.1:8080").is_some());
    }

    #[test]
    fn the_public_name_or_a_real_host_is_left_alone() {
        assert_eq!(location("localhost:8080", "http://localhost:8080"), None);
        assert_eq!(location("LOCALHOST:8080", "http://localhost:8080"), None);
        assert_eq!(
            location("portal.example.com", "https://portal.example.com"),
            None
        );
        assert_eq!(
            location("10.0.0.5:8080", "https://portal.example.com"),
            None
        );
        assert_eq!(
            location("127.0.0.1:8080", "https://portal.example.com"),
            None
        );
    }
}
