//! The simulated Tenant Service over HTTP (`/api/v1/tenants...`).

use super::{Sims, error, unavailable};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use portal_domain::model::{
    Email, GenesysConfig, NewTenant, Region, TenantId, TenantStatus, TenantUpdate, UserId,
    WebhookConfig, WhatsAppConfig,
};
use portal_domain::ports::downstream::TenantServiceError;
use portal_domain::secret::SecretString;
use serde::Deserialize;
use time::OffsetDateTime;

fn tenant_error(e: TenantServiceError) -> HttpResponse {
    match e {
        TenantServiceError::NotFound => {
            error(StatusCode::NOT_FOUND, "not_found", "tenant not found")
        }
        TenantServiceError::Rejected(reason) => error(StatusCode::CONFLICT, "rejected", &reason),
        TenantServiceError::Failure(_) => unavailable(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateBody {
    company_name: String,
    region: Region,
    contact_email: Email,
    created_by: UserId,
}

pub(super) async fn create(sims: web::Data<Sims>, body: web::Json<CreateBody>) -> HttpResponse {
    let b = body.into_inner();
    let new = NewTenant {
        company_name: b.company_name,
        region: b.region,
        contact_email: b.contact_email,
        created_by: b.created_by,
    };
    match sims.tenants.create(&new).await {
        Ok(t) => HttpResponse::Created().json(t),
        Err(e) => tenant_error(e),
    }
}

fn tenant_not_found() -> HttpResponse {
    tenant_error(TenantServiceError::NotFound)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenesysConfigBody {
    client_id: String,
    client_secret: String,
    region: Region,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WhatsAppConfigBody {
    phone_number_id: String,
    system_user_token: String,
    #[serde(default)]
    phone_number: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhooksBody {
    genesys: String,
    meta: String,
    secret: String,
    verify_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UpdateBody {
    company_name: Option<String>,
    region: Option<Region>,
    contact_email: Option<Email>,
    genesys_config: Option<GenesysConfigBody>,
    whatsapp_config: Option<WhatsAppConfigBody>,
    webhooks: Option<WebhooksBody>,
    status: Option<TenantStatus>,
    onboarded_by: Option<UserId>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    onboarded_at: Option<OffsetDateTime>,
}

impl From<UpdateBody> for TenantUpdate {
    fn from(b: UpdateBody) -> Self {
        TenantUpdate {
            company_name: b.company_name,
            region: b.region,
            contact_email: b.contact_email,
            genesys_config: b.genesys_config.map(|g| GenesysConfig {
                client_id: g.client_id,
                client_secret: SecretString::from(g.client_secret),
                region: g.region,
            }),
            whatsapp_config: b.whatsapp_config.map(|w| WhatsAppConfig {
                phone_number_id: w.phone_number_id,
                system_user_token: SecretString::from(w.system_user_token),
                phone_number: w.phone_number,
            }),
            webhooks: b.webhooks.map(|h| WebhookConfig {
                genesys_url: h.genesys,
                meta_url: h.meta,
                secret: SecretString::from(h.secret),
                verify_token: SecretString::from(h.verify_token),
            }),
            status: b.status,
            onboarded_by: b.onboarded_by,
            onboarded_at: b.onboarded_at,
        }
    }
}

pub(super) async fn update(
    sims: web::Data<Sims>,
    path: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> HttpResponse {
    let Ok(id) = path.parse::<TenantId>() else {
        return tenant_not_found();
    };
    let update = TenantUpdate::from(body.into_inner());
    match sims.tenants.update(id, &update).await {
        Ok(t) => HttpResponse::Ok().json(t),
        Err(e) => tenant_error(e),
    }
}

pub(super) async fn by_user(sims: web::Data<Sims>, path: web::Path<String>) -> HttpResponse {
    let Ok(user) = UserId::parse(path.into_inner()) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no tenant");
    };
    match sims.tenants.by_user(&user).await {
        Ok(Some(t)) => HttpResponse::Ok().json(t),
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", "no tenant"),
        Err(e) => tenant_error(e),
    }
}
