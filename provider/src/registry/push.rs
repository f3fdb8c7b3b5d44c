//! Submit-ContainerImage (`docker push`): the image is exported (Export's
//! OCI layout, the chosen compression) into the store's staging area, and
//! its blobs and manifest uploaded.
//!
//! Per blob: `HEAD` skips what the registry has; a layer whose image also
//! carries a tag of another repository of the same registry is mounted
//! from there (`POST ?mount=&from=`, one token with both scopes); else an
//! upload session sends the file in chunks (`PATCH`, always to the latest
//! `Location`), and the final `PUT ?digest=` names the digest. After a
//! dropped connection the registry is asked how much it holds (`GET` on the
//! session) and the upload goes on from there; a session the registry has
//! forgotten (404, 416) starts the blob again. The manifest is `PUT` with
//! its own media type and the digest the registry answers is checked.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};

use super::client::{read_limited, status_error, Body, Client};
use super::reference::Reference;
use super::{io_err, RegistryError, MAX_DOCUMENT};
use crate::export::{export, Format};
use crate::oci::spec::{self, Compression, Descriptor, Index, Manifest};
use crate::progress::Reporter;
use crate::store::Store;

/// The default upload chunk: large enough to keep a loopback link busy,
/// small enough that a dropped connection costs little.
pub const DEFAULT_CHUNK: u64 = 64 << 20;

/// How to push.
#[derive(Clone, Debug)]
pub struct PushOptions {
    pub compression: Compression,
    /// Bytes per `PATCH`.
    pub chunk: u64,
    /// Attempts per blob after dropped connections or forgotten sessions.
    pub retries: u32,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            compression: Compression::Gzip,
            chunk: DEFAULT_CHUNK,
            retries: 5,
        }
    }
}

impl PushOptions {
    /// The defaults; with the `test-hooks` feature (never in a release
    /// build) `CONTAINERIMAGE_UPLOAD_CHUNK` sets the chunk size.
    pub fn from_env() -> PushOptions {
        #[allow(unused_mut)]
        let mut options = PushOptions::default();
        #[cfg(feature = "test-hooks")]
        if let Some(n) = std::env::var("CONTAINERIMAGE_UPLOAD_CHUNK")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            options.chunk = n.max(1);
        }
        options
    }
}

/// What a push did.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// `registry/repository:tag`.
    pub destination: String,
    /// The manifest's digest, as the registry confirmed it.
    pub digest: String,
    /// Bytes of the image: manifest, config and layers.
    pub size: u64,
    /// Blobs uploaded, mounted and skipped (already there).
    pub uploaded: usize,
    pub mounted: usize,
    pub skipped: usize,
}

enum BlobResult {
    Uploaded,
    Mounted,
    Skipped,
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> RegistryError {
    RegistryError::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

fn location(
    client: &Client,
    base: &Url,
    response: &reqwest::blocking::Response,
) -> Result<Url, RegistryError> {
    let text = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| invalid(format!("the answer to {base}"), "it has no Location"))?;
    client.resolve(base, text)
}

/// The last byte the registry holds, from `Range: 0-<last>`.
fn range_end(response: &reqwest::blocking::Response) -> Option<u64> {
    let text = response.headers().get("Range")?.to_str().ok()?;
    let (start, end) = text.trim().trim_start_matches("bytes=").split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    end.trim().parse().ok()
}

/// A timeout for sending `len` bytes: the read timeout plus time at a slow
/// but acceptable 1 MiB/s.
fn send_timeout(client: &Client, len: u64) -> Duration {
    client.downloader().settings().read_timeout + Duration::from_secs(len / (1 << 20))
}

/// Opens an upload session; returns its Location.
fn start_session(
    client: &Client,
    repository: &str,
    scopes: &[String],
    reporter: &dyn Reporter,
) -> Result<Url, RegistryError> {
    let url = client.url(&format!("{repository}/blobs/uploads/"))?;
    let response = client.send(
        Method::POST,
        &url,
        &[],
        &Body::Empty,
        scopes,
        None,
        reporter,
    )?;
    if response.status() != StatusCode::ACCEPTED {
        return Err(status_error("starting an upload", &url, response));
    }
    location(client, &url, &response)
}

/// Asks the registry how much of an upload it holds (`GET` on the session):
/// the bytes held and the session's new Location. `None` when it has
/// forgotten the upload (404, 416) or cannot say after a few tries.
fn upload_status(
    client: &Client,
    location_url: &Url,
    scopes: &[String],
    options: &PushOptions,
    reporter: &dyn Reporter,
) -> Option<(u64, Option<Url>)> {
    for attempt in 0..=options.retries {
        match client.send(
            Method::GET,
            location_url,
            &[],
            &Body::Empty,
            scopes,
            None,
            reporter,
        ) {
            Ok(r) if r.status().is_success() => {
                let held = range_end(&r).map_or(0, |e| e + 1);
                let next = location(client, location_url, &r).ok();
                return Some((held, next));
            }
            Ok(r) => {
                reporter.verbose(&format!("the upload's status: {}", r.status()));
                return None;
            }
            Err(e) => {
                reporter.verbose(&format!(
                    "asking for the upload's status: {}",
                    crate::error_chain(&e)
                ));
                std::thread::sleep(client.downloader().settings().retry_base * (attempt + 1));
            }
        }
    }
    None
}

fn upload_blob(
    client: &Client,
    repository: &str,
    file: &Path,
    d: &Descriptor,
    mount_from: &[String],
    options: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<BlobResult, RegistryError> {
    let push_scope = format!("repository:{repository}:pull,push");
    let head_url = client.url(&format!("{repository}/blobs/{}", d.digest))?;
    let response = client.send(
        Method::HEAD,
        &head_url,
        &[],
        &Body::Empty,
        std::slice::from_ref(&push_scope),
        None,
        reporter,
    )?;
    if response.status().is_success() {
        reporter.verbose(&format!("{} is in {repository} already", d.digest));
        return Ok(BlobResult::Skipped);
    }
    let mut session = None;
    for from in mount_from {
        let scopes = [push_scope.clone(), format!("repository:{from}:pull")];
        let mut url = client.url(&format!("{repository}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", &d.digest)
            .append_pair("from", from);
        let response = client.send(
            Method::POST,
            &url,
            &[],
            &Body::Empty,
            &scopes,
            None,
            reporter,
        )?;
        match response.status() {
            StatusCode::CREATED => {
                reporter.verbose(&format!("{} mounted from {from}", d.digest));
                return Ok(BlobResult::Mounted);
            }
            StatusCode::ACCEPTED => {
                session = Some(location(client, &url, &response)?);
                break;
            }
            _ => reporter.verbose(&format!(
                "mounting {} from {from}: {}",
                d.digest,
                response.status()
            )),
        }
    }
    let scopes = [push_scope];
    let mut location_url = match session {
        Some(s) => s,
        None => start_session(client, repository, &scopes, reporter)?,
    };
    let label = format!(
        "uploading {}",
        spec::sha256_hex(&d.digest)
            .and_then(|h| h.get(..12))
            .unwrap_or_default()
    );
    reporter.on_start(&label, Some(d.size));
    let mut offset: u64 = 0;
    let mut failures = 0u32;
    let result = loop {
        if offset >= d.size {
            break Ok(());
        }
        let len = options.chunk.max(1).min(d.size - offset);
        let end = offset + len - 1;
        let sent = client.send(
            Method::PATCH,
            &location_url,
            &[
                ("Content-Type", "application/octet-stream".to_string()),
                ("Content-Range", format!("{offset}-{end}")),
            ],
            &Body::File {
                path: file,
                offset,
                len,
            },
            &scopes,
            Some(send_timeout(client, len)),
            reporter,
        );
        let problem = match sent {
            Ok(response) if response.status() == StatusCode::ACCEPTED => {
                let next = location(client, &location_url, &response)?;
                let held = range_end(&response).map_or(end + 1, |e| e + 1);
                reporter.on_progress(held.saturating_sub(offset));
                location_url = next;
                offset = held;
                continue;
            }
            Ok(response)
                if matches!(
                    response.status(),
                    StatusCode::NOT_FOUND | StatusCode::RANGE_NOT_SATISFIABLE
                ) =>
            {
                format!("the registry forgot the upload ({})", response.status())
            }
            Ok(response) if response.status().is_server_error() => {
                format!("the registry answered {}", response.status())
            }
            Ok(response) => {
                break Err(status_error(
                    &format!("uploading {}", d.digest),
                    &location_url,
                    response,
                ))
            }
            Err(e @ RegistryError::Transport { .. }) => crate::error_chain(&e),
            Err(e) => break Err(e),
        };
        failures += 1;
        if failures > options.retries {
            break Err(invalid(
                format!("the upload of {}", d.digest),
                format!("gave up after {failures} attempts; last: {problem}"),
            ));
        }
        std::thread::sleep(client.downloader().settings().retry_base * failures);
        // Where is the upload? Resume from there, or start again.
        match upload_status(client, &location_url, &scopes, options, reporter) {
            Some((held, next)) if held <= d.size => {
                reporter.warn(&format!(
                    "{problem}; resuming the upload of {} at byte {held}",
                    d.digest
                ));
                if let Some(next) = next {
                    location_url = next;
                }
                offset = held;
            }
            _ => {
                reporter.warn(&format!(
                    "{problem}; the registry has no record of the upload, starting {} again",
                    d.digest
                ));
                reporter.on_complete();
                reporter.on_start(&label, Some(d.size));
                offset = 0;
                location_url = start_session(client, repository, &scopes, reporter)?;
            }
        }
    };
    reporter.on_complete();
    result?;
    let mut put_url = location_url.clone();
    put_url.query_pairs_mut().append_pair("digest", &d.digest);
    let response = client.send(
        Method::PUT,
        &put_url,
        &[("Content-Length", "0".into())],
        &Body::Empty,
        &scopes,
        None,
        reporter,
    )?;
    if response.status() != StatusCode::CREATED {
        return Err(status_error(
            &format!("finishing the upload of {}", d.digest),
            &put_url,
            response,
        ));
    }
    if let Some(got) = response
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
    {
        if got != d.digest {
            return Err(invalid(
                format!("the upload of {}", d.digest),
                format!("the registry stored it as {got}"),
            ));
        }
    }
    Ok(BlobResult::Uploaded)
}

/// Pushes the installed image `image` to `destination` (which must name a
/// tag; `latest` when it names none).
pub fn push(
    store: &Store,
    client: &Client,
    image: &str,
    destination: &Reference,
    options: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<Pushed, RegistryError> {
    if destination.digest.is_some() {
        return Err(invalid(
            format!("the destination {destination}"),
            "a push names a tag, not a digest",
        ));
    }
    let repository = &destination.repository;
    let tag = destination
        .tag
        .clone()
        .unwrap_or_else(|| crate::store::DEFAULT_TAG.to_string());
    // Repositories of the same registry the image came from: mount sources.
    let listing = store.listing(reporter)?;
    let record = listing.resolve(image)?.clone();
    let prefix = format!("{}/", destination.registry);
    let mut mount_from: Vec<String> = listing
        .tags
        .of(&record.full_name)
        .iter()
        .filter_map(|t| t.repository.strip_prefix(&prefix).map(str::to_string))
        .filter(|r| r != repository)
        .collect();
    mount_from.dedup();

    let staging_root = store.root().join(".staging");
    std::fs::create_dir_all(&staging_root).map_err(io_err(&staging_root))?;
    let staged = tempfile::Builder::new()
        .prefix("push-")
        .tempdir_in(&staging_root)
        .map_err(io_err(&staging_root))?;
    let layout = staged.path().join("layout");
    reporter.verbose(&format!("exporting {image} into {}", layout.display()));
    export(
        store,
        &[image.to_string()],
        &layout,
        Format::OciDirectory,
        options.compression,
        reporter,
    )?;
    let blobs = layout.join("blobs/sha256");
    let read = |d: &Descriptor| -> Result<Vec<u8>, RegistryError> {
        let hex = spec::sha256_hex(&d.digest).unwrap_or_default();
        let path = blobs.join(hex);
        let file = crate::fsutil::open_regular(&path).map_err(io_err(&path))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_DOCUMENT), &mut bytes)
            .map_err(io_err(&path))?;
        Ok(bytes)
    };
    let index_path = layout.join("index.json");
    let index_file = crate::fsutil::open_regular(&index_path).map_err(io_err(&index_path))?;
    let mut index_bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(index_file, MAX_DOCUMENT),
        &mut index_bytes,
    )
    .map_err(io_err(&index_path))?;
    let index: Index = serde_json::from_slice(&index_bytes)
        .map_err(|e| invalid(index_path.display().to_string(), e.to_string()))?;
    let entry = index
        .manifests
        .first()
        .ok_or_else(|| invalid(index_path.display().to_string(), "it names no image"))?;
    let manifest_bytes = read(entry)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| invalid("the exported manifest", e.to_string()))?;

    let mut pushed = Pushed {
        destination: format!("{}/{repository}:{tag}", destination.registry),
        digest: String::new(),
        size: manifest_bytes.len() as u64,
        uploaded: 0,
        mounted: 0,
        skipped: 0,
    };
    let config_mount: [String; 0] = [];
    for (d, sources) in manifest
        .layers
        .iter()
        .map(|l| (l, mount_from.as_slice()))
        .chain(std::iter::once((&manifest.config, &config_mount[..])))
    {
        let hex = spec::sha256_hex(&d.digest).unwrap_or_default();
        pushed.size += d.size;
        match upload_blob(
            client,
            repository,
            &blobs.join(hex),
            d,
            sources,
            options,
            reporter,
        )? {
            BlobResult::Uploaded => pushed.uploaded += 1,
            BlobResult::Mounted => pushed.mounted += 1,
            BlobResult::Skipped => pushed.skipped += 1,
        }
    }

    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| spec::MEDIA_OCI_MANIFEST.to_string());
    let url = client.url(&format!("{repository}/manifests/{tag}"))?;
    let scopes = [format!("repository:{repository}:pull,push")];
    let response = client.send(
        Method::PUT,
        &url,
        &[(CONTENT_TYPE.as_str(), media_type)],
        &Body::Bytes(&manifest_bytes),
        &scopes,
        None,
        reporter,
    )?;
    if response.status() != StatusCode::CREATED {
        return Err(status_error(
            &format!("putting the manifest of {}", pushed.destination),
            &url,
            response,
        ));
    }
    let digest = crate::oci::digest_of(&manifest_bytes);
    let answered = response
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _ = read_limited(response, MAX_DOCUMENT, &url);
    match answered {
        Some(a) if a != digest => {
            return Err(invalid(
                format!("the manifest of {}", pushed.destination),
                format!("the registry answered the digest {a}, but the manifest sent has {digest}"),
            ))
        }
        None => reporter.warn(&format!(
            "the registry did not confirm the manifest digest of {}",
            pushed.destination
        )),
        Some(_) => {}
    }
    pushed.digest = digest;
    Ok(pushed)
}
