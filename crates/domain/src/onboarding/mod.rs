//! The onboarding wizard (spec §6, decisions §5).
//!
//! # Layout
//! - [`state`]: the stored wizard state; [`Progress`] makes skipped steps unrepresentable
//!   and its transitions apply the ordering and reset rules.
//! - [`input`]: one validating newtype per input field ([`CompanyName`], [`ClientId`],
//!   [`ClientSecret`], [`PhoneNumberId`], [`SystemUserToken`]: the only statement of each
//!   rule), the step inputs built from them, and [`FieldError`].
//! - `usecase`: [`Onboarding`], its ports and settings, and what every step shares; `error`:
//!   [`OnboardingError`].
//! - one file per step: `step1` (organisation, tenant creation), `credentials` (steps 2 and 3,
//!   and the integration checks), `validate` (step 4), `complete` (step 5 and its retries).
//!
//! Secrets (Genesys client secret, WhatsApp token, webhook secret and verify token) exist in
//! plain text only as [`SecretString`](crate::secret::SecretString)s for the moment of use;
//! in the state they are [`Ciphertext`](crate::model::Ciphertext)s bound to the tenant and
//! field.

mod complete;
mod credentials;
mod error;
pub mod input;
pub mod state;
mod step1;
mod usecase;
mod validate;

pub use complete::Completion;
pub use error::OnboardingError;
pub use input::{
    ClientId, ClientSecret, CompanyName, FieldError, GenesysCredentials, PhoneNumberId,
    SystemUserToken, WhatsAppCredentials,
};
pub use state::*;
pub use usecase::{Onboarding, OnboardingPorts, OnboardingSettings, fields};
