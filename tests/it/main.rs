//! End-to-end tests of the `containerimage` binary.

mod common;
mod save;
