//! OneGet's rules for choosing feed entries: name wildcards and version bounds.
