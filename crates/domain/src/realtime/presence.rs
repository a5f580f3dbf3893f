//! The registry of live sockets across instances: admitting a socket under the caps,
//! releasing it, the tenant's presence, and this instance's periodic refresh (its entries
//! expire with [`PRESENCE_TTL`], so a crashed instance's sockets drop out).

use super::*;

impl Hub {
    /// Admits a socket of `owner` if this instance and the registry's caps allow it. A
    /// registry that cannot be reached does not refuse (the caps protect capacity; the
    /// socket was authenticated already), and the next refresh counts the socket.
    pub async fn admit(self: &Arc<Self>, owner: SocketOwner) -> Result<Permit, Refusal> {
        let max = self.settings.max_sockets;
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= max {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Instance(max));
        }
        let caps = self.settings.caps;
        let admission = self
            .ports
            .presence
            .admit(&self.ports.instance, &owner, caps, PRESENCE_TTL)
            .await;
        let refusal = match admission {
            Ok(Admission::Admitted) => None,
            Ok(Admission::SessionFull) => Some(Refusal::Session(caps.per_session)),
            Ok(Admission::UserFull) => Some(Refusal::User(caps.per_user)),
            Err(e) => {
                tracing::warn!(error = %e, "socket registry unavailable; admitting without the per-session and per-user caps");
                None
            }
        };
        match refusal {
            Some(r) => {
                self.admitted.fetch_sub(1, Ordering::AcqRel);
                Err(r)
            }
            None => Ok(Permit {
                hub: self.clone(),
                owner,
                armed: true,
            }),
        }
    }

    /// Uncounts a socket in the registry, in the background (a drop cannot wait).
    pub(super) fn release(&self, owner: SocketOwner) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime left (process exit): the entries expire with the TTL
        };
        let presence = self.ports.presence.clone();
        let instance = self.ports.instance.clone();
        runtime.spawn(async move {
            if let Err(e) = presence.release(&instance, &owner).await {
                tracing::debug!(error = %e, "socket registry release failed; the next refresh corrects it");
            }
        });
    }

    /// The tenant's live sockets across every instance.
    pub async fn presence(&self, tenant: TenantId) -> Result<TenantPresence, StoreError> {
        self.ports.presence.tenant(tenant).await
    }

    /// Refreshes this instance's registry entries every [`PRESENCE_REFRESH`], forever: each
    /// tenant with local sockets, with its exact counts (so lost releases heal).
    pub async fn keep_presence(self: Arc<Self>) {
        let mut tick = tokio::time::interval(PRESENCE_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for (tenant, owners) in self.local_owners() {
                if let Err(e) = self
                    .ports
                    .presence
                    .refresh(&self.ports.instance, tenant, &owners, PRESENCE_TTL)
                    .await
                {
                    tracing::debug!(error = %e, "socket registry refresh failed; retried at the next tick");
                }
            }
        }
    }

    /// This instance's sockets, per tenant and owner.
    fn local_owners(&self) -> Vec<(TenantId, Vec<OwnerSockets>)> {
        let reg = self.read();
        reg.by_tenant
            .iter()
            .map(|(tenant, conns)| {
                let mut counts: HashMap<(&UserId, &SessionKey), u32> = HashMap::new();
                for conn in conns.values() {
                    *counts.entry((&conn.user, &conn.session)).or_default() += 1;
                }
                let owners = counts
                    .into_iter()
                    .map(|((user, session), sockets)| OwnerSockets {
                        owner: SocketOwner {
                            tenant: *tenant,
                            user: user.clone(),
                            session: session.clone(),
                        },
                        sockets,
                    })
                    .collect();
                (*tenant, owners)
            })
            .collect()
    }
}
