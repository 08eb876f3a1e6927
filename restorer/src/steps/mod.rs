//! The restore's steps, each the thin I/O that carries out part of a [`crate::plan::Plan`].

pub mod accounts;
pub mod docker;
pub mod files;
pub mod local_pg;
pub mod n8n;
pub mod postgres;
pub mod preflight;
pub mod roles;
pub mod system;
pub mod validate;
