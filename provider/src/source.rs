//! Package sources: a registered name and a location that yields a feed.
