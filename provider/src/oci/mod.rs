//! OCI images in the Windows layer format: the layer tar, and (to come)
//! image configs, manifests, layouts and archives. Formats only: this module
//! knows nothing of the store.

pub mod compress;
pub mod layer;
pub mod layer_read;
pub mod spec;
pub mod tar;
pub mod tar_read;
