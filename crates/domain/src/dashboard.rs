//! Dashboard metrics with cache-aside, stampede protection and stale fallback (spec §7,
//! decisions §6). Owned by the dashboard issue.
