//! Recording metadata: the `recordings` and `pending_unlinks` tables. Every query is scoped by
//! the owner, so another user's recording is simply not found.
//!
//! Permanent deletion never leaves a row without its file: the row is deleted and its path
//! queued in `pending_unlinks` in one transaction, the file unlinked after the commit, and the
//! queue entry removed last. Startup finishes whatever a crash interrupted.

pub mod lifecycle;
pub mod listing;
pub mod row;

pub use lifecycle::*;
pub use listing::*;
pub use row::*;

#[cfg(test)]
mod tests;
