//! The ContainerImage provider core: feeds and sources, downloads, the WIM
//! reader and the local image store.
//!
//! This crate never prints. Progress, warnings and verbose lines go through
//! [`progress::Reporter`], which the command line implements.

pub mod config;
pub mod download;
pub mod feed;
pub mod fsutil;
pub mod install;
pub mod location;
pub mod progress;
pub mod query;
pub mod source;
pub mod store;
pub mod version;
pub mod wildcard;
pub mod wim;
