//! The `user`, `check` and `backup` commands: they work on the data directory directly, safely
//! beside a running server.

pub mod base;
pub mod data;
pub mod users;

pub use base::{Failure, finish, human_bytes};
pub use data::{CheckArgs, backup, check, restore, storage_adopt, storage_migrate, transcribe};
pub use users::{user_add, user_list, user_passwd, user_remove};
