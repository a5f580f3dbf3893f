//! Single-use WebSocket tickets (`POST /api/v1/auth/ws-ticket`, `?ticket=`).

use super::{Authenticator, CurrentSession, SessionError};
use crate::crypto::sha256_hex;
use crate::error::StoreError;
use crate::model::SessionKey;
use crate::ports::stores::OneTimePurpose;
use crate::ports::system::RandomExt;
use crate::secret::{ExposeSecret, SecretString};

impl Authenticator {
    /// Issues a single-use WebSocket ticket for the session (`POST /api/v1/auth/ws-ticket`).
    pub async fn issue_ws_ticket(
        &self,
        current: &CurrentSession,
    ) -> Result<SecretString, StoreError> {
        let ticket = self.random.token::<32>();
        self.one_time
            .put(
                OneTimePurpose::WsTicket,
                &sha256_hex(ticket.expose_secret().as_bytes()),
                current.key.as_str(),
                self.settings.ws_ticket_ttl,
            )
            .await?;
        Ok(ticket)
    }

    /// Redeems a WebSocket ticket (once) for its session.
    pub async fn redeem_ws_ticket(&self, ticket: &str) -> Result<CurrentSession, SessionError> {
        if ticket.is_empty() || ticket.len() > 128 {
            return Err(SessionError::Expired);
        }
        let key = self
            .one_time
            .take(OneTimePurpose::WsTicket, &sha256_hex(ticket.as_bytes()))
            .await?
            .ok_or(SessionError::Expired)?;
        self.authenticate_key(SessionKey::from_hex(key)).await
    }
}
