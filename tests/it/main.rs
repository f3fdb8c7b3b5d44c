//! End-to-end tests of the `containerimage` binary.

mod cli;
mod common;
mod feeds;
mod hostile_feeds;
mod save;
mod store;
mod wim;
mod wim_hostile;
