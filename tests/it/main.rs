//! End-to-end tests of the `containerimage` binary.

mod cli;
mod common;
mod export;
mod feeds;
mod import;
mod save;
mod store;
mod wim;
mod wim_hostile;
