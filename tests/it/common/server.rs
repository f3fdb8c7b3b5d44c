//! A real HTTP server on 127.0.0.1 for the tests (filled in with the download engine).
