//! The onboarding wizard (spec §6, decisions §5).
//!
//! Owned by the onboarding issue: the state machine in [`state`], the use case next to it.

mod state;

pub use state::*;
