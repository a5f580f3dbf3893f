//! Step 1: the organisation. Creates the user's tenant (or updates the one they have) and
//! binds the session to it.

use super::error::{OnboardingError, tenant_failure};
use super::state::{OnboardingState, OrganizationDetails, Progress};
use super::usecase::Onboarding;
use crate::audit::AuditAction;
use crate::auth::{Capability, CurrentSession};
use crate::error::StoreError;
use crate::model::{NewTenant, Tenant, TenantId, TenantStatus, TenantUpdate, UserId};
use crate::ports::stores::{LockToken, Versioned};
use std::time::Duration;

/// How long one step 1 may hold the per-user creation lock (a crashed holder frees it then).
const CREATE_LOCK_TTL: Duration = Duration::from_secs(15);
/// How long a second tab waits for the first one's tenant creation.
const CREATE_LOCK_WAIT: Duration = Duration::from_secs(5);

impl Onboarding {
    /// Step 1: records the organisation and creates the tenant, or updates the user's
    /// existing one (the session's, else the Tenant Service's for this user). Resets any
    /// later step. Binds the session to the tenant. Audited (in the tenant's trail) with the
    /// fields that changed.
    pub async fn step1(
        &self,
        current: &CurrentSession,
        details: OrganizationDetails,
    ) -> Result<OnboardingState, OnboardingError> {
        let result = self.organization_step(current, details).await;
        self.audit_step(
            current,
            AuditAction::OnboardingOrganization,
            &result,
            |event, outcome| match outcome {
                Ok((state, changed)) => event
                    .in_tenant(Some(state.tenant_id))
                    .target(format!("tenant:{}", state.tenant_id))
                    .fields_changed(changed),
                Err(e) => event.detail("fields", e.fields()),
            },
        );
        result.map(|(state, _)| state)
    }

    async fn organization_step(
        &self,
        current: &CurrentSession,
        details: OrganizationDetails,
    ) -> Result<(OnboardingState, Vec<&'static str>), OnboardingError> {
        let session_tenant = current.authorize(Capability::Onboard)?;
        let user = &current.session.user_id;
        // A user without a tenant may have two tabs racing here: only one may create it. The
        // other waits for the lock, then finds the tenant through `by_user` and updates it.
        let creation_lock = match session_tenant {
            Some(_) => None,
            None => Some(self.creation_lock(user).await?),
        };
        let result = self.step1_locked(current, session_tenant, details).await;
        if let Some((name, token)) = creation_lock
            && let Err(e) = self.ports.lock.release(&name, &token).await
        {
            tracing::warn!(error = %e, "could not release the tenant-creation lock");
        }
        result
    }

    /// The per-user tenant-creation lock, waited for up to [`CREATE_LOCK_WAIT`].
    async fn creation_lock(&self, user: &UserId) -> Result<(String, LockToken), OnboardingError> {
        let name = format!("onboarding:create:{user}");
        let deadline = tokio::time::Instant::now() + CREATE_LOCK_WAIT;
        loop {
            if let Some(token) = self.ports.lock.try_acquire(&name, CREATE_LOCK_TTL).await? {
                return Ok((name, token));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(
                    "another request is still creating this user's tenant".into(),
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Step 1 once no other request can be creating this user's tenant.
    async fn step1_locked(
        &self,
        current: &CurrentSession,
        session_tenant: Option<TenantId>,
        details: OrganizationDetails,
    ) -> Result<(OnboardingState, Vec<&'static str>), OnboardingError> {
        let user = &current.session.user_id;
        let existing = match session_tenant {
            Some(t) => Some(t),
            None => self
                .ports
                .tenants
                .by_user(user)
                .await
                .map_err(|e| tenant_failure(e, true))?
                .map(|t| t.id),
        };
        let tenant = match existing {
            Some(id) => self.update_tenant(id, &details).await?,
            None => self.create_tenant(user, &details).await?,
        };
        let (state, changed) = self.record_organization(tenant.id, user, details).await?;
        if current.session.tenant_id != Some(tenant.id) {
            let onboarding_only = tenant.status != TenantStatus::Active;
            self.ports
                .authenticator
                .bind_tenant(&current.key, tenant.id, onboarding_only)
                .await?;
        }
        tracing::info!(tenant_id = %tenant.id, "onboarding step 1 completed");
        Ok((state, changed))
    }

    /// The user's existing tenant with the new organisation details.
    async fn update_tenant(
        &self,
        id: TenantId,
        details: &OrganizationDetails,
    ) -> Result<Tenant, OnboardingError> {
        let update = TenantUpdate {
            company_name: Some(details.company_name.to_string()),
            region: Some(details.region),
            contact_email: Some(details.contact_email.clone()),
            ..TenantUpdate::default()
        };
        self.ports
            .tenants
            .update(id, &update)
            .await
            .map_err(|e| tenant_failure(e, true))
    }

    /// A preliminary tenant (status `onboarding`) for a user who has none.
    async fn create_tenant(
        &self,
        user: &UserId,
        details: &OrganizationDetails,
    ) -> Result<Tenant, OnboardingError> {
        let new = NewTenant {
            company_name: details.company_name.to_string(),
            region: details.region,
            contact_email: details.contact_email.clone(),
            created_by: user.clone(),
        };
        let created = self
            .ports
            .tenants
            .create(&new)
            .await
            .map_err(|e| tenant_failure(e, true))?;
        tracing::info!(tenant_id = %created.id, user_id = %user, "preliminary tenant created");
        Ok(created)
    }

    /// Saves step 1 into the tenant's wizard (a new one, or an existing one whose later steps
    /// are discarded); returns it with the names of the fields that changed.
    async fn record_organization(
        &self,
        tenant_id: TenantId,
        user: &UserId,
        details: OrganizationDetails,
    ) -> Result<(OnboardingState, Vec<&'static str>), OnboardingError> {
        let now = self.ports.clock.now();
        let loaded = self.ports.store.load(tenant_id).await?;
        let changed = match &loaded {
            Some(Versioned { value, .. }) => changed_fields(&value.organization, &details),
            None => vec!["companyName", "region", "contactEmail"],
        };
        let (state, version) = match loaded {
            Some(Versioned { version, value }) => (
                OnboardingState {
                    organization: details,
                    progress: Progress::Organization,
                    last_updated: now,
                    ..value
                },
                Some(version),
            ),
            None => (
                OnboardingState {
                    tenant_id,
                    started_by: user.clone(),
                    organization: details,
                    progress: Progress::Organization,
                    created_at: now,
                    last_updated: now,
                },
                None,
            ),
        };
        self.save(&state, version).await?;
        Ok((state, changed))
    }
}

/// The names of the organisation's fields that differ.
fn changed_fields(old: &OrganizationDetails, new: &OrganizationDetails) -> Vec<&'static str> {
    [
        ("companyName", old.company_name != new.company_name),
        ("region", old.region != new.region),
        ("contactEmail", old.contact_email != new.contact_email),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}
