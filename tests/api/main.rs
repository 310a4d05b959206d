//! Integration tests: a real server over real HTTP, each test in its own temp data directory.
//! The harness is in `support`; every other module holds tests only.

mod accounts;
mod analysis;
mod batch;
mod bookmarks;
mod browser;
mod browser_bookmarks;
mod browser_devices;
mod browser_player;
mod browser_recorder;
mod browser_resumable;
mod browser_transcript;
mod browser_waveform;
mod cli;
mod compat;
mod devices;
mod disk_full;
mod durability;
mod hostile;
mod metrics;
mod openapi;
mod ops;
mod recordings;
mod s3;
mod safety;
mod shares;
mod support;
mod tls;
mod transcripts;
mod tus_client;
mod ui;
mod uploads;
mod webdav;
