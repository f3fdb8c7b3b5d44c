//! Registry answers that lie, redirects, dropped connections.
