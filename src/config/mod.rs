//! Configuration: built-in defaults < config file < `RECORDER_*` environment < command-line flags.
//!
//! Every value is validated once, before anything starts; an error names the key, where the
//! value came from and what was wrong with it.

pub mod resolve;
pub mod sections;
pub mod sources;
pub mod values;

pub use crate::storage::s3::S3Config;
pub use resolve::load;
pub use sections::*;
pub use sources::{ConfigError, Env, Overrides, ProcessEnv, parse_size};
pub use values::{Config, EXAMPLE_CONFIG};

#[cfg(test)]
mod tests;
