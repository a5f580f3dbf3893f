//! What a person needs right after start-up, logged once (pretty on a terminal): in the
//! embedded default (simulated sign-in with the demo users), a sign-in link per demo user, the
//! API documentation, and each demo tenant's WebSocket URL with the `Origin` it requires.

use crate::configuration::Settings;
use portal_sandbox::demo;

/// One thing to open or call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// What it is for (the log message).
    pub what: String,
    /// The URL.
    pub url: String,
    /// A note next to it (role and tenant, or the `Origin` to send).
    pub note: String,
}

/// The links of [`announce`]; empty unless sign-in is simulated (nobody else's users are
/// known here).
pub fn links(settings: &Settings, port: u16) -> Vec<Link> {
    if !settings.simulated_auth() {
        return Vec::new();
    }
    let base = settings.public_base_url(port);
    let tenants = demo::tenants();
    let tenant_name = |id| {
        tenants
            .iter()
            .find(|t| t.id == id)
            .map_or_else(String::new, |t| t.company_name.clone())
    };
    let mut links: Vec<Link> = demo::users()
        .into_iter()
        .map(|u| Link {
            what: "sign in as a demo user".into(),
            url: format!("{base}/api/v1/auth/login?login_hint={}", u.email.as_str()),
            note: match u.tenant {
                Some(t) => format!("{} of {}", u.role.as_str(), tenant_name(t)),
                None => format!(
                    "{} without a tenant: the onboarding wizard",
                    u.role.as_str()
                ),
            },
        })
        .collect();
    links.push(Link {
        what: "API documentation".into(),
        url: format!("{base}/docs"),
        note: format!("the OpenAPI document: {base}/api/v1/openapi.json"),
    });
    let ws_base = base.replacen("http", "ws", 1);
    for tenant in &tenants {
        links.push(Link {
            what: "live traffic (WebSocket, with the session cookie)".into(),
            url: format!("{ws_base}/tenant/{}/portal", tenant.id),
            note: format!(
                "{}; send the header Origin: {}",
                tenant.company_name,
                settings.frontend_url.trim_end_matches('/')
            ),
        });
    }
    links
}

/// Logs [`links`], one line each.
pub fn announce(settings: &Settings, port: u16) {
    for link in links(settings, port) {
        tracing::info!(url = %link.url, note = %link.note, "{}", link.what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_lists_sign_in_docs_and_websocket_urls() {
        let links = links(&Settings::default(), 8080);
        let urls: Vec<&str> = links.iter().map(|l| l.url.as_str()).collect();
        assert!(
            urls.contains(&"http://localhost:8080/api/v1/auth/login?login_hint=admin@acme.example")
        );
        assert!(urls.contains(&"http://localhost:8080/docs"));
        let acme = format!(
            "ws://localhost:8080/tenant/{}/portal",
            demo::acme_tenant_id()
        );
        let ws = links.iter().find(|l| l.url == acme).expect("Acme's socket");
        assert!(ws.note.contains("Origin: http://localhost:3000"), "{ws:?}");
        assert_eq!(
            links
                .iter()
                .filter(|l| l.what.starts_with("sign in"))
                .count(),
            demo::users().len()
        );
    }

    #[test]
    fn nothing_without_the_simulated_sign_in() {
        let settings = Settings {
            auth_service_url: Some("https://auth.internal".into()),
            ..Settings::default()
        };
        assert!(links(&settings, 8080).is_empty());
    }
}
