//! Agent widget sends (spec §9.2, decisions §6). Owned by the real-time/widget issue.
