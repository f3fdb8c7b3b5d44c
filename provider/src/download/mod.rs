//! Verified, resumable, retried downloads of `.wim` files.
