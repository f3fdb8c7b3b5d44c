//! Registries: the OCI distribution protocol (pull, push, catalog, tags),
//! authentication and Docker's credential file.
//!
//! Transfers only: [`pull`] and [`push`] join this protocol with the store
//! through Import and Export, as `install.rs` joins feeds and the store.

pub mod auth;
pub mod client;
pub mod credentials;
pub mod pull;
pub mod push;
pub mod reference;
pub mod search;

use std::path::PathBuf;

pub use auth::{Credentials, Secret};
pub use client::Client;
pub use reference::{Reference, ReferenceError};

/// The media types a manifest request accepts, in order of preference.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest, index or config read.
pub const MAX_DOCUMENT: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("cannot reach {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{what}: {url} answered {status}{detail}")]
    Status {
        what: String,
        url: String,
        status: String,
        detail: String,
    },
    #[error("the registry {registry} refused the credentials or asks for them: {reason}; {hint}")]
    Unauthorized {
        registry: String,
        reason: String,
        hint: String,
    },
    #[error("{what} is not valid: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{url} sent more than {limit} bytes, more than this client reads for it")]
    TooLarge { url: String, limit: u64 },
    #[error("cannot download the blob {digest}")]
    Download {
        digest: String,
        #[source]
        source: crate::download::DownloadError,
    },
    #[error("cannot use {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}
