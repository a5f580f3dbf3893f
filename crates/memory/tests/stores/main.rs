//! The in-memory store adapters: the shared store contract (`portal-contract`, the suite the
//! Redis adapters pass too) and what is particular to them.

mod adapters;
mod contract;
