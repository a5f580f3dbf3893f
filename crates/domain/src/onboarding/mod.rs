//! The onboarding wizard (spec §6, decisions §5).
//!
//! # Layout
//! - [`state`]: the stored wizard state; [`Progress`] makes skipped steps unrepresentable
//!   and its transitions apply the ordering and reset rules.
//! - [`input`]: one validating newtype per input field ([`CompanyName`], [`ClientId`],
//!   [`ClientSecret`], [`PhoneNumberId`], [`SystemUserToken`]: the only statement of each
//!   rule), the step inputs built from them, and [`FieldError`].
//! - [`usecase`]: [`Onboarding`], the use case, and [`OnboardingError`].
//!
//! Secrets (Genesys client secret, WhatsApp token, webhook secret and verify token) exist in
//! plain text only as [`SecretString`](crate::secret::SecretString)s for the moment of use;
//! in the state they are [`Ciphertext`](crate::model::Ciphertext)s bound to the tenant and
//! field.

pub mod input;
pub mod state;
pub mod usecase;

#[cfg(test)]
mod tests;

pub use input::{
    ClientId, ClientSecret, CompanyName, FieldError, GenesysCredentials, PhoneNumberId,
    SystemUserToken, WhatsAppCredentials,
};
pub use state::*;
pub use usecase::{
    Completion, Onboarding, OnboardingError, OnboardingPorts, OnboardingSettings, fields,
};
