//! OCI images in the Windows layer format: the layer tar, and (to come)
//! image configs, manifests, layouts and archives. Formats only: this module
//! knows nothing of the store.

pub mod compress;
pub mod layer;
pub mod layer_read;
pub mod spec;
pub mod tar;
pub mod tar_read;

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    )
}

/// Writes `bytes` into a `blobs/sha256` folder under their digest; returns
/// the digest.
pub fn put_blob(blobs: &crate::fsutil::dir::Dir, bytes: &[u8]) -> std::io::Result<String> {
    let digest = digest_of(bytes);
    let hex = digest.trim_start_matches("sha256:");
    blobs.write_atomic(std::path::Path::new(hex), bytes)?;
    Ok(digest)
}
