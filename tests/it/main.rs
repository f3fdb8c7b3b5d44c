//! End-to-end tests of the `containerimage` binary.

mod admin;
mod cli;
mod common;
mod containers;
mod export;
mod feeds;
mod hostile_feeds;
mod import;
mod leftovers;
mod registry;
mod save;
mod signing;
mod store;
mod wim;
mod wim_craft;
mod wim_hostile;
mod wim_links;
mod wim_metadata;
