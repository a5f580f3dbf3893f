use super::*;

fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn nothing_configured_gives_the_embedded_defaults() {
    let s = Settings::load_from(env(&[])).unwrap();
    assert_eq!(s.port, 8080);
    assert_eq!(s.host, "127.0.0.1");
    assert_eq!(s.frontend_url, "http://localhost:3000");
    assert_eq!(
        url::Url::parse(&s.public_base_url(8080))
            .unwrap()
            .host_str(),
        url::Url::parse(&s.frontend_url).unwrap().host_str(),
        "the service and the frontend share a host name, so the cookie reaches both"
    );
    assert_eq!(s.public_base_url(8080), "http://localhost:8080");
    assert_eq!(s.region(), Region::UsEast1);
    assert_eq!(s.rate_limits(), RateLimits::default());
}

#[test]
fn the_default_public_url_names_localhost_for_local_binds_only() {
    let with_host = |host: &str| Settings {
        host: host.into(),
        ..Settings::default()
    };
    for local in ["127.0.0.1", "0.0.0.0", "::1", "[::1]", "::", "localhost"] {
        assert_eq!(
            with_host(local).public_base_url(9000),
            "http://localhost:9000",
            "{local}"
        );
    }
    assert_eq!(
        with_host("10.1.2.3").public_base_url(9000),
        "http://10.1.2.3:9000"
    );
    let configured = Settings {
        base_url: Some("https://portal.example.com/".into()),
        ..Settings::default()
    };
    assert_eq!(
        configured.public_base_url(9000),
        "https://portal.example.com"
    );
}

#[test]
fn log_format_pretty_on_a_terminal_json_elsewhere_and_in_production() {
    use crate::telemetry::LogFormat;
    let s = Settings::load_from(env(&[])).unwrap();
    let terminal = s.logging(true, false);
    assert_eq!((terminal.format, terminal.ansi), (LogFormat::Pretty, true));
    assert!(!s.logging(true, true).ansi, "NO_COLOR");
    let piped = s.logging(false, false);
    assert_eq!((piped.format, piped.ansi), (LogFormat::Json, false));
    let pretty = Settings::load_from(env(&[("LOG_FORMAT", "pretty")])).unwrap();
    let to_file = pretty.logging(false, false);
    assert_eq!(
        (to_file.format, to_file.ansi),
        (LogFormat::Pretty, false),
        "no colour codes in a file"
    );
    let json = Settings::load_from(env(&[("LOG_FORMAT", "json")])).unwrap();
    assert_eq!(json.logging(true, false).format, LogFormat::Json);
    let err = Settings::load_from(env(&[("LOG_FORMAT", "yaml")])).unwrap_err();
    assert!(err.to_string().contains("LOG_FORMAT"), "{err}");
    let production = Settings {
        portal_env: "production".into(),
        ..Settings::default()
    };
    assert_eq!(production.logging(true, false).format, LogFormat::Json);
    let refused = Settings {
        log_format: Some("pretty".into()),
        ..production
    }
    .validated()
    .unwrap_err();
    assert!(
        refused.to_string().contains("LOG_FORMAT: must be json"),
        "{refused}"
    );
}

#[test]
fn spec_variable_names_work_as_written() {
    let s = Settings::load_from(env(&[
        ("PORT", "9000"),
        ("FRONTEND_URL", "https://portal.example.com"),
        ("GENESYS_REGION", "eu-west-1"),
        ("COOKIE_SECURE", "false"),
        ("RATE_LIMIT_AUTH_MAX", "1000"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ("FORWARDED_HEADER", "Forwarded"),
    ]))
    .unwrap();
    assert_eq!(s.forwarded_header(), portal_api::ForwardedHeader::Forwarded);
    assert_eq!(s.port, 9000);
    assert_eq!(s.frontend_url, "https://portal.example.com");
    assert_eq!(s.region(), Region::EuWest1);
    assert_eq!(s.cookie_secure, Some(false));
    assert_eq!(s.rate_limits().auth.limit, 1000);
    assert_eq!(s.proxies().len(), 2);
}

#[test]
fn the_docs_are_served_except_in_production_unless_configured() {
    let dev = Settings::load_from(env(&[])).unwrap();
    assert!(dev.docs());
    let off = Settings::load_from(env(&[("DOCS_ENABLED", "false")])).unwrap();
    assert!(!off.docs());
    let production = Settings {
        portal_env: "production".into(),
        ..Settings::default()
    };
    assert!(!production.docs());
    let production_on = Settings {
        docs_enabled: Some(true),
        ..production
    };
    assert!(production_on.docs());
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = Settings::load_from(env(&[
        ("PORTAL_ENV", "production"),
        ("FRONTEND_URL", "not a url"),
        ("GENESYS_REGION", "mars-1"),
        ("TRUSTED_PROXIES", "10.0.0.0/99"),
        ("FORWARDED_HEADER", "x-real-ip"),
        ("HTTP_MAX_HEADERS", "200"),
    ]))
    .unwrap_err();
    let text = err.to_string();
    for expected in [
        "FRONTEND_URL",
        "GENESYS_REGION",
        "TRUSTED_PROXIES",
        "FORWARDED_HEADER",
        "HTTP_MAX_HEADERS",
        "ENCRYPTION_KEY",
        "COOKIE_SECRET",
        "AUDIT_HMAC_KEY",
    ] {
        assert!(text.contains(expected), "{expected} missing from {text}");
    }
}

#[test]
fn values_made_of_digits_are_kept_as_written() {
    let key = format!("00{}", "12".repeat(31));
    let s = Settings::load_from(env(&[
        ("ENCRYPTION_KEY", key.as_str()),
        ("REDIS_PASSWORD", "007"),
        ("GENESYS_CLIENT_ID", "0042"),
        ("PORT", "9000"),
        ("REDIS_TLS", "true"),
        ("STATE_MANAGER_BREAKER_FAILURE_RATE", "0.25"),
    ]))
    .unwrap();
    assert_eq!(s.encryption_key.unwrap().expose_secret(), key);
    assert_eq!(s.redis.password.unwrap().expose_secret(), "007");
    assert_eq!(s.genesys_client_id.as_deref(), Some("0042"));
    assert_eq!(s.port, 9000);
    assert!(s.redis.tls);
    assert!((s.state_manager_breaker_failure_rate - 0.25).abs() < f64::EPSILON);
}

#[test]
fn bad_secrets_are_refused_without_echoing_them() {
    let err = Settings::load_from(env(&[
        ("ENCRYPTION_KEY", "zz-not-hex-zz"),
        ("COOKIE_SECRET", "short-secret-value"),
        ("AUDIT_HMAC_KEY", "short-audit-key"),
    ]))
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ENCRYPTION_KEY") && text.contains("COOKIE_SECRET"));
    assert!(text.contains("AUDIT_HMAC_KEY"), "{text}");
    assert!(!text.contains("zz-not-hex-zz") && !text.contains("short-secret-value"));
    assert!(!text.contains("short-audit-key"));
}
