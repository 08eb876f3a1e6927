//! packer: builds self-contained backup bundles. The binary in `main.rs` is a thin CLI over these
//! modules; the bundle format itself belongs to the `restorer` crate.

pub mod catalog;
pub mod commands;
pub mod config;
pub mod create;
pub mod cycle;
pub mod deep;
pub mod detect;
pub mod error_text;
pub mod exit;
pub mod job;
pub mod lock;
pub mod notify;
pub mod pg_cluster;
pub mod pg_container;
pub mod pgzip;
pub mod restorer_bin;
pub mod retention;
pub mod s3;
pub mod schedule;
pub mod serve;
pub mod ship;
pub mod sources;
pub mod space;
pub mod spool;
pub mod status;
pub mod system_info;
pub mod units;
pub mod verification;
pub mod words;
pub mod writer;
