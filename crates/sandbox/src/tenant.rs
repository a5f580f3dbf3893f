//! The simulated Tenant Service: tenant creation and update, user links.

use crate::platform::{SimState, TenantRecord};
use async_trait::async_trait;
use portal_domain::model::{NewTenant, Tenant, TenantId, TenantStatus, TenantUpdate, UserId};
use portal_domain::ports::downstream::{TenantService, TenantServiceError};
use std::sync::Arc;

/// The simulated Tenant Service.
#[derive(Debug, Clone)]
pub(crate) struct SimTenantService {
    state: Arc<SimState>,
}

impl SimTenantService {
    /// Over the shared state.
    pub(crate) fn new(state: Arc<SimState>) -> Self {
        Self { state }
    }
}

fn check_company_name(name: &str) -> Result<(), TenantServiceError> {
    let len = name.trim().chars().count();
    if (2..=100).contains(&len) {
        Ok(())
    } else {
        Err(TenantServiceError::Rejected(
            "companyName must be 2-100 characters".to_owned(),
        ))
    }
}

#[async_trait]
impl TenantService for SimTenantService {
    async fn create(&self, new: &NewTenant) -> Result<Tenant, TenantServiceError> {
        check_company_name(&new.company_name)?;
        let tenant = Tenant {
            id: TenantId::new_random(),
            company_name: new.company_name.trim().to_owned(),
            region: new.region,
            contact_email: Some(new.contact_email.clone()),
            status: TenantStatus::Onboarding,
        };
        let record = TenantRecord {
            created_by: Some(new.created_by.clone()),
            ..TenantRecord::default()
        };
        let mut inner = self.state.lock();
        // The creator now belongs to the new tenant (a later `by_user` returns it). A user who
        // already had a tenant is moved to the new one: the simulation never refuses a retry.
        inner.user_tenant.insert(new.created_by.clone(), tenant.id);
        inner.tenants.insert(tenant.id, (tenant.clone(), record));
        Ok(tenant)
    }

    async fn update(
        &self,
        id: TenantId,
        update: &TenantUpdate,
    ) -> Result<Tenant, TenantServiceError> {
        if let Some(name) = &update.company_name {
            check_company_name(name)?;
        }
        let mut inner = self.state.lock();
        let (tenant, record) = inner
            .tenants
            .get_mut(&id)
            .ok_or(TenantServiceError::NotFound)?;
        if let Some(name) = &update.company_name {
            tenant.company_name = name.trim().to_owned();
        }
        if let Some(region) = update.region {
            tenant.region = region;
        }
        if let Some(email) = &update.contact_email {
            tenant.contact_email = Some(email.clone());
        }
        if let Some(status) = update.status {
            tenant.status = status;
        }
        // Secrets are accepted but not kept: the simulator has no use for them.
        if let Some(g) = &update.genesys_config {
            record.genesys_client_id = Some(g.client_id.clone());
            tenant.region = g.region;
        }
        if let Some(w) = &update.whatsapp_config {
            record.whatsapp_phone_number_id = Some(w.phone_number_id.clone());
            record.phone_number = w.phone_number.clone();
        }
        if let Some(h) = &update.webhooks {
            record.genesys_webhook_url = Some(h.genesys_url.clone());
            record.meta_webhook_url = Some(h.meta_url.clone());
        }
        if let Some(by) = &update.onboarded_by {
            record.onboarded_by = Some(by.clone());
        }
        if let Some(at) = update.onboarded_at {
            record.onboarded_at = Some(at);
        }
        Ok(tenant.clone())
    }

    async fn by_user(&self, user: &UserId) -> Result<Option<Tenant>, TenantServiceError> {
        let inner = self.state.lock();
        Ok(inner
            .user_tenant
            .get(user)
            .and_then(|id| inner.tenants.get(id))
            .map(|(t, _)| t.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{ACME_NAME, NEWCO_ADMIN_ID, acme_tenant_id};
    use crate::test_support::{demo_start, platform_at};
    use portal_domain::model::{Email, GenesysConfig, Region};
    use portal_domain::secret::secret;

    fn newco() -> NewTenant {
        NewTenant {
            company_name: "NewCo".into(),
            region: Region::EuWest1,
            contact_email: Email::parse("new@newco.example").unwrap(),
            created_by: UserId::parse(NEWCO_ADMIN_ID).unwrap(),
        }
    }

    #[tokio::test]
    async fn demo_tenants_are_active_and_linked_to_their_users() {
        let (platform, _) = platform_at(demo_start());
        let tenants = platform.tenant_service();
        let acme = tenants
            .by_user(&UserId::parse(crate::demo::ACME_VIEWER_ID).unwrap())
            .await
            .unwrap()
            .expect("the viewer's tenant");
        assert_eq!(acme.id, acme_tenant_id());
        assert_eq!(acme.company_name, ACME_NAME);
        assert_eq!(acme.status, TenantStatus::Active);
        assert_eq!(acme.region, Region::UsEast1);
    }

    #[tokio::test]
    async fn onboarding_creates_a_tenant_that_by_user_then_returns() {
        let (platform, _) = platform_at(demo_start());
        let tenants = platform.tenant_service();
        let user = UserId::parse(NEWCO_ADMIN_ID).unwrap();
        assert_eq!(tenants.by_user(&user).await.unwrap(), None);

        let created = tenants.create(&newco()).await.unwrap();
        assert_eq!(created.status, TenantStatus::Onboarding);
        assert_eq!(tenants.by_user(&user).await.unwrap(), Some(created.clone()));

        // The profile hint follows the link too.
        let state = platform.state();
        assert_eq!(
            state.tenant_record(created.id).unwrap().created_by,
            Some(user)
        );
    }

    #[tokio::test]
    async fn update_applies_fields_and_is_idempotent() {
        let (platform, _) = platform_at(demo_start());
        let tenants = platform.tenant_service();
        let created = tenants.create(&newco()).await.unwrap();
        let update = || TenantUpdate {
            company_name: Some("NewCo Ltd".into()),
            genesys_config: Some(GenesysConfig {
                client_id: "client-1".into(),
                client_secret: secret("s3cret"),
                region: Region::EuCentral1,
            }),
            status: Some(TenantStatus::Active),
            ..TenantUpdate::default()
        };
        let first = tenants.update(created.id, &update()).await.unwrap();
        let second = tenants.update(created.id, &update()).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(first.company_name, "NewCo Ltd");
        assert_eq!(first.region, Region::EuCentral1);
        assert_eq!(first.status, TenantStatus::Active);
        let creator = UserId::parse(NEWCO_ADMIN_ID).unwrap();
        assert_eq!(tenants.by_user(&creator).await.unwrap(), Some(first));
        assert_eq!(
            tenants
                .update(TenantId::new_random(), &update())
                .await
                .unwrap_err(),
            TenantServiceError::NotFound
        );
        let bad = TenantUpdate {
            company_name: Some("x".into()),
            ..TenantUpdate::default()
        };
        assert!(matches!(
            tenants.update(created.id, &bad).await.unwrap_err(),
            TenantServiceError::Rejected(_)
        ));
    }
}
