//! HTTP adapter for the Tenant Service port ([`TenantService`], spec §3.1.2).
//!
//! | operation | request | deadline | retried |
//! | --- | --- | --- | --- |
//! | create | `POST /api/v1/tenants` `{companyName, region, contactEmail, status: "onboarding", createdBy}` | 5 s | never |
//! | update | `PUT /api/v1/tenants/:id` (camelCase [`TenantUpdate`] fields, secrets in the body only) | 5 s | yes |
//! | by user | `GET /api/v1/tenants/by-user/:userId` (404 → `Ok(None)`) | 2 s | yes |
//!
//! Responses may be wrapped as `{"data": {...}}` or bare. 404 → `NotFound`; 400/409/422 →
//! `Rejected(reason)`; everything else that fails → `Failure`.
//!
//! # Layout
//! Everything is in this file: [`HttpTenantService`], its [`Timeouts`], body builders.
//!
//! # Dependencies
//! `portal-domain` (the port), `portal-outbound` (all HTTP plumbing), serde, time.

use async_trait::async_trait;
use portal_domain::model::{NewTenant, Tenant, TenantId, TenantUpdate, UserId};
use portal_domain::ports::downstream::{TenantService, TenantServiceError};
use portal_domain::secret::ExposeSecret;
use portal_outbound::{Call, CallError, Downstream};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The service name in logs, metrics and `/health`.
pub const SERVICE: &str = "tenantService";

/// Per-endpoint deadlines (spec §3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `POST /api/v1/tenants`.
    pub create: Duration,
    /// `GET /api/v1/tenants/by-user/:userId`.
    pub get: Duration,
    /// `PUT /api/v1/tenants/:id`.
    pub update: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            create: Duration::from_secs(5),
            get: Duration::from_secs(2),
            update: Duration::from_secs(5),
        }
    }
}

/// The Tenant Service over HTTP.
#[derive(Debug, Clone)]
pub struct HttpTenantService {
    downstream: Downstream,
    timeouts: Timeouts,
}

impl HttpTenantService {
    /// An adapter over `downstream` (whose base URL is `TENANT_SERVICE_URL`).
    pub fn new(downstream: Downstream) -> Self {
        Self {
            downstream,
            timeouts: Timeouts::default(),
        }
    }

    /// Replaces the deadlines.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    async fn tenant(&self, call: Call) -> Result<Tenant, TenantServiceError> {
        let reply = self.downstream.send(call).await.map_err(map_error)?;
        reply.json_data("tenant").map_err(failure)
    }
}

fn failure(e: CallError) -> TenantServiceError {
    TenantServiceError::Failure(e.into_failure())
}

fn map_error(e: CallError) -> TenantServiceError {
    match e {
        CallError::NotFound(_) => TenantServiceError::NotFound,
        CallError::BadRequest { ref body, .. } | CallError::Conflict(ref body) => {
            let reason = body
                .message()
                .unwrap_or_else(|| "the Tenant Service refused the request".to_owned());
            TenantServiceError::Rejected(reason)
        }
        other => failure(other),
    }
}

/// The JSON body of a `PUT /api/v1/tenants/:id`: only the fields that are set.
fn update_body(update: &TenantUpdate) -> Value {
    let mut body = Map::new();
    if let Some(name) = &update.company_name {
        body.insert("companyName".into(), json!(name));
    }
    if let Some(region) = update.region {
        body.insert("region".into(), json!(region.as_str()));
    }
    if let Some(email) = &update.contact_email {
        body.insert("contactEmail".into(), json!(email.as_str()));
    }
    if let Some(g) = &update.genesys_config {
        body.insert(
            "genesysConfig".into(),
            json!({
                "clientId": g.client_id,
                "clientSecret": g.client_secret.expose_secret(),
                "region": g.region.as_str(),
            }),
        );
    }
    if let Some(w) = &update.whatsapp_config {
        body.insert(
            "whatsappConfig".into(),
            json!({
                "phoneNumberId": w.phone_number_id,
                "systemUserToken": w.system_user_token.expose_secret(),
                "phoneNumber": w.phone_number,
            }),
        );
    }
    if let Some(h) = &update.webhooks {
        body.insert(
            "webhooks".into(),
            json!({
                "genesys": h.genesys_url,
                "meta": h.meta_url,
                "secret": h.secret.expose_secret(),
                "verifyToken": h.verify_token.expose_secret(),
            }),
        );
    }
    if let Some(status) = update.status {
        body.insert("status".into(), json!(status));
    }
    if let Some(by) = &update.onboarded_by {
        body.insert("onboardedBy".into(), json!(by.as_str()));
    }
    if let Some(at) = update.onboarded_at
        && let Ok(text) = at.format(&time::format_description::well_known::Rfc3339)
    {
        body.insert("onboardedAt".into(), json!(text));
    }
    Value::Object(body)
}

#[async_trait]
impl TenantService for HttpTenantService {
    async fn create(&self, tenant: &NewTenant) -> Result<Tenant, TenantServiceError> {
        let body = json!({
            "companyName": tenant.company_name,
            "region": tenant.region.as_str(),
            "contactEmail": tenant.contact_email.as_str(),
            "status": "onboarding",
            "createdBy": tenant.created_by.as_str(),
        });
        let call = Call::post(
            "create_tenant",
            self.downstream.url(&["api", "v1", "tenants"]),
        )
        .timeout(self.timeouts.create)
        .json(&body);
        self.tenant(call).await
    }

    async fn update(
        &self,
        id: TenantId,
        update: &TenantUpdate,
    ) -> Result<Tenant, TenantServiceError> {
        let id = id.to_string();
        let call = Call::put(
            "update_tenant",
            self.downstream.url(&["api", "v1", "tenants", &id]),
        )
        .timeout(self.timeouts.update)
        .json(&update_body(update));
        self.tenant(call).await
    }

    async fn by_user(&self, user: &UserId) -> Result<Option<Tenant>, TenantServiceError> {
        let call = Call::get(
            "get_tenant_by_user",
            self.downstream
                .url(&["api", "v1", "tenants", "by-user", user.as_str()]),
        )
        .timeout(self.timeouts.get);
        let reply = match self.downstream.send(call).await {
            Ok(reply) => reply,
            Err(CallError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(map_error(e)),
        };
        // `null`, `{}` or `{"data": null}` also mean "no tenant".
        let value: Value = reply.json("tenant").map_err(failure)?;
        let inner = match value {
            Value::Object(mut o) if o.contains_key("data") => o.remove("data").unwrap_or_default(),
            other => other,
        };
        match inner {
            Value::Null => Ok(None),
            Value::Object(ref o) if o.is_empty() => Ok(None),
            other => serde_json::from_value(other)
                .map(Some)
                .map_err(|e| failure(CallError::malformed("tenant", &e))),
        }
    }
}
