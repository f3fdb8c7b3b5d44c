//! The local image store: installed images, their index and metadata.
