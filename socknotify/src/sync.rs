//! Sync shim.
