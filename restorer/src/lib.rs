//! The bundle format and everything a fresh host needs to come back from a bundle.
//!
//! This crate is the single owner of the bundle format: the layout of entries ([`layout`]), the
//! manifest schema ([`manifest`]), digests and the checksum list ([`digest`]), safe unpacking of a
//! `.tar.gz` ([`unpack`]) and verification of an extracted bundle ([`verify`]). `packer` writes
//! bundles through these types, so the writer and the reader cannot drift apart.
//!
//! The restore itself is split the same way: [`plan`] decides what would happen (pure, testable
//! from data), [`steps`] carry it out, [`checkpoint`] keeps what was there before so a failed or
//! unwanted restore can be undone, and [`report`] says what happened.
//!
//! Everything here must build for `x86_64-unknown-linux-musl`: the `restore` binary is static.

pub mod broken_pipe;
pub mod checkpoint;
pub mod cli_docs;
pub mod commands;
pub mod container;
pub mod digest;
pub mod docker;
pub mod error;
pub mod exit;
pub mod gunzip;
pub mod http;
pub mod inventory;
pub mod layout;
pub mod links;
pub mod log;
pub mod manifest;
pub mod n8n;
pub mod names;
pub mod open;
pub mod owners;
pub mod pg;
pub mod pg_tls;
pub mod plan;
pub mod pool;
pub mod progress;
pub mod raw_path;
pub mod report;
pub mod restore;
pub mod sealed;
pub mod select;
pub mod space;
pub mod sqlite;
pub mod steps;
pub mod sys;
pub mod take;
pub mod unpack;
pub mod verify;
pub mod zst;

pub use error::{Error, Result};
