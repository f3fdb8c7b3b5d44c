//! The ContainerImage provider core: feeds and sources, downloads, the WIM
//! reader and the local image store.
//!
//! This crate never prints. Progress, warnings and verbose lines go through
//! [`progress::Reporter`], which the command line implements.

pub mod config;
pub mod container;
pub mod download;
pub mod export;
pub mod feed;
pub mod fsutil;
pub mod import;
pub mod install;
pub mod location;
pub mod names;
pub mod oci;
pub mod pipeline;
pub mod progress;
pub mod query;
pub mod registry;
pub mod signing;
pub mod source;
pub mod store;
pub mod version;
pub mod wildcard;
pub mod wim;

/// The causes of an error, from `first` (usually `e.source()`) down.
pub fn error_causes<'a>(
    first: Option<&'a (dyn std::error::Error + 'static)>,
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(first, |c| c.source())
}

/// An error and its causes on one line: "a: b: c". A cause whose text the
/// line already holds (an error that quotes its source) is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    for c in error_causes(e.source()) {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
    }
    text
}
