//! Placeholder for the HTTP sandbox of the whole platform (a later task serves the simulators
//! of `portal_sandbox` over HTTP here).

fn main() {}
