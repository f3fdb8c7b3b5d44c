//! Submit-ContainerImage (`docker push`): the image is exported (Export's
//! OCI layout, the chosen compression) into the store's staging area while
//! each layer is uploaded as it is made: one upload session per layer, a
//! `PATCH` for every 16 MiB the exporter has written to the layer's blob
//! file (read back through a handle of its own), the digest given at the
//! final `PUT`. A layer whose digest is known from an earlier push or pull (kept
//! in `<store>/.cache/pushed-layers.json`) is first asked for with `HEAD`
//! and mounted when it can be, so it is not sent again; when the export
//! turns out to give other bytes than remembered, the registry is asked
//! for the new digest. When a stream breaks, the layer is finished on disk
//! and the upload goes on from where the registry says, as below.
//!
//! Per blob sent from a file: `HEAD` skips what the registry has; a layer whose image also
//! carries a tag of another repository of the same registry is mounted
//! from there (`POST ?mount=&from=`, one token with both scopes); else an
//! upload session sends the file in chunks (`PATCH`, always to the latest
//! `Location`), and the final `PUT ?digest=` names the digest. After a
//! dropped connection the registry is asked how much it holds (`GET` on the
//! session) and the upload goes on from there; a session the registry has
//! forgotten (404, 416) starts the blob again. The manifest is `PUT` with
//! its own media type and the digest the registry answers is checked.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};

use super::client::{read_limited, status_error, Body, Client};
use super::reference::Reference;
use super::{io_err, RegistryError, MAX_DOCUMENT};
use crate::export::{export_tapped, Format, LayerSink, LayerTap};
use crate::oci::spec::{self, Compression, Descriptor, Index, Manifest};
use crate::progress::Reporter;
use crate::store::{ImageRecord, Store};

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
    /// Upload each layer while it is made (one streamed `PATCH`); without,
    /// layers are made first and sent in chunks of `chunk` bytes.
    pub stream: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            compression: Compression::Gzip,
            chunk: DEFAULT_CHUNK,
            retries: 5,
            stream: true,
        }
    }
}

impl PushOptions {
    /// The defaults; with the `test-hooks` feature (never in a release
    /// build) `CONTAINERIMAGE_UPLOAD_CHUNK` sets the chunk size and turns
    /// streaming off, so chunked uploads can be tested on their own.
    pub fn from_env() -> PushOptions {
        #[allow(unused_mut)]
        let mut options = PushOptions::default();
        #[cfg(feature = "test-hooks")]
        if let Some(n) = std::env::var("CONTAINERIMAGE_UPLOAD_CHUNK")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            options.chunk = n.max(1);
            options.stream = false;
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

/// `HEAD` for the blob `d`, then a mount from each of `mount_from`: what
/// made an upload needless, or `None`.
fn skip_or_mount(
    client: &Client,
    repository: &str,
    d: &Descriptor,
    mount_from: &[String],
    reporter: &dyn Reporter,
) -> Result<Option<BlobResult>, RegistryError> {
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
        return Ok(Some(BlobResult::Skipped));
    }
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
        if response.status() == StatusCode::CREATED {
            reporter.verbose(&format!("{} mounted from {from}", d.digest));
            return Ok(Some(BlobResult::Mounted));
        }
        reporter.verbose(&format!(
            "mounting {} from {from}: {}",
            d.digest,
            response.status()
        ));
    }
    Ok(None)
}

/// Uploads the blob `d` from `file`, unless the registry has it or can
/// mount it.
fn upload_blob(
    client: &Client,
    repository: &str,
    file: &Path,
    d: &Descriptor,
    mount_from: &[String],
    options: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<BlobResult, RegistryError> {
    if let Some(done) = skip_or_mount(client, repository, d, mount_from, reporter)? {
        return Ok(done);
    }
    let scopes = [format!("repository:{repository}:pull,push")];
    let session = start_session(client, repository, &scopes, reporter)?;
    send_file(client, repository, file, d, session, 0, options, reporter)?;
    Ok(BlobResult::Uploaded)
}

/// Sends `file` (the blob `d`) into the upload session at `location_url`
/// from byte `offset` in chunks, resuming after interruptions, then
/// finishes the upload with its digest.
#[allow(clippy::too_many_arguments)]
fn send_file(
    client: &Client,
    repository: &str,
    file: &Path,
    d: &Descriptor,
    mut location_url: Url,
    mut offset: u64,
    options: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<(), RegistryError> {
    let scopes = [format!("repository:{repository}:pull,push")];
    let label = format!(
        "uploading {}",
        spec::sha256_hex(&d.digest)
            .and_then(|h| h.get(..12))
            .unwrap_or_default()
    );
    reporter.on_start(&label, Some(d.size));
    reporter.on_progress(offset);
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
    finish_upload(client, &location_url, d, &scopes, reporter)
}

/// Ends an upload session whose bytes are all sent: `PUT ?digest=`, and
/// the digest the registry stored it under checked.
fn finish_upload(
    client: &Client,
    location_url: &Url,
    d: &Descriptor,
    scopes: &[String],
    reporter: &dyn Reporter,
) -> Result<(), RegistryError> {
    let mut put_url = location_url.clone();
    put_url.query_pairs_mut().append_pair("digest", &d.digest);
    let response = client.send(
        Method::PUT,
        &put_url,
        &[("Content-Length", "0".into())],
        &Body::Empty,
        scopes,
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
    Ok(())
}

/// Where the digests of pushed layers are remembered, so a push can ask the
/// registry for a layer (and skip or mount it) before making it again.
const DIGEST_CACHE: &str = "pushed-layers.json";

/// A layer's compressed digest and size, by store image and compression.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct DigestCache {
    #[serde(rename = "Layers")]
    layers: std::collections::BTreeMap<String, (String, u64)>,
}

fn cache_key(record: &ImageRecord, compression: Compression) -> String {
    format!(
        "{} {} {}",
        record.full_name,
        record.install_token,
        compression.oci_layer_media_type()
    )
}

impl DigestCache {
    fn load(store: &Store) -> DigestCache {
        crate::fsutil::dir::Dir::open(&store.cache_dir())
            .and_then(|d| d.read_limited(Path::new(DIGEST_CACHE), 4 << 20))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, store: &Store, reporter: &dyn Reporter) {
        let written = crate::fsutil::dir::Dir::create_all(&store.cache_dir()).and_then(|d| {
            d.write_atomic(
                Path::new(DIGEST_CACHE),
                &serde_json::to_vec(self).unwrap_or_default(),
            )
        });
        if let Err(e) = written {
            reporter.verbose(&format!(
                "could not remember the pushed layers' digests: {e}"
            ));
        }
    }
}

/// Remembers the digests of the layers of store images (base first, each
/// with its layer's descriptor), for later pushes.
pub(crate) fn remember_layers<'a>(
    store: &Store,
    layers: impl Iterator<Item = (&'a ImageRecord, &'a Descriptor)>,
    reporter: &dyn Reporter,
) {
    let mut cache = DigestCache::load(store);
    for (image, d) in layers {
        if let Some(compression) = Compression::of_layer_media_type(&d.media_type) {
            cache
                .layers
                .insert(cache_key(image, compression), (d.digest.clone(), d.size));
        }
    }
    cache.save(store, reporter);
}

/// How much of a layer's blob file is written, and whether it is done.
#[derive(Default)]
struct Growth {
    written: u64,
    done: bool,
}

type Shared = Arc<(Mutex<Growth>, Condvar)>;

/// A layer being made: its blob file (opened for reading) and how far it is.
struct LayerStream {
    full_name: String,
    file: File,
    growth: Shared,
}

/// Hands the layers a push wants over to the uploading thread.
struct StreamTap {
    wanted: HashSet<String>,
    announce: Mutex<SyncSender<LayerStream>>,
}

impl LayerTap for StreamTap {
    fn begin(&self, full_name: &str, reader: File) -> Option<Box<dyn LayerSink>> {
        if !self.wanted.contains(full_name) {
            return None;
        }
        let growth: Shared = Arc::default();
        self.announce
            .lock()
            .ok()?
            .send(LayerStream {
                full_name: full_name.to_string(),
                file: reader,
                growth: growth.clone(),
            })
            .ok()?;
        Some(Box::new(GrowthSink(growth)))
    }
}

/// Tells the uploader how far the layer is; dropped, that it is done.
struct GrowthSink(Shared);

impl LayerSink for GrowthSink {
    fn written(&mut self, total: u64) {
        let (lock, ready) = &*self.0;
        if let Ok(mut g) = lock.lock() {
            g.written = total;
            ready.notify_all();
        }
    }
}

impl Drop for GrowthSink {
    fn drop(&mut self) {
        let (lock, ready) = &*self.0;
        if let Ok(mut g) = lock.lock() {
            g.done = true;
            ready.notify_all();
        }
    }
}

/// Bytes per `PATCH` while a layer is being made.
const STREAM_PATCH: u64 = 16 << 20;

/// How uploading a layer while it was made ended: the session to finish,
/// or the session (if one was opened) and what went wrong.
type Streamed = Result<Url, (Option<Url>, String)>;

/// Uploads a layer while it is made: one session, a `PATCH` for each
/// [`STREAM_PATCH`] bytes as soon as the file holds them.
fn stream_layer(
    client: &Client,
    repository: &str,
    stream: LayerStream,
    reporter: &dyn Reporter,
) -> Streamed {
    let scopes = [format!("repository:{repository}:pull,push")];
    let mut session = match start_session(client, repository, &scopes, reporter) {
        Ok(u) => u,
        Err(e) => return Err((None, crate::error_chain(&e))),
    };
    reporter.on_start(
        &format!("uploading the layer of {}", stream.full_name),
        None,
    );
    let (lock, ready) = &*stream.growth;
    let mut offset = 0u64;
    let outcome = loop {
        // Wait for a whole PATCH's worth, or the end of the layer.
        let (written, done) = {
            let waited = lock.lock().and_then(|g| {
                ready.wait_while(g, |g| !g.done && g.written < offset + STREAM_PATCH)
            });
            match waited {
                Ok(g) => (g.written, g.done),
                Err(_) => break Err("the layer's progress could not be read".to_string()),
            }
        };
        if written <= offset {
            if done {
                break Ok(());
            }
            continue;
        }
        let len = if done {
            written - offset
        } else {
            STREAM_PATCH.min(written - offset)
        };
        let end = offset + len - 1;
        let sent = client.send(
            Method::PATCH,
            &session,
            &[
                ("Content-Type", "application/octet-stream".to_string()),
                ("Content-Range", format!("{offset}-{end}")),
            ],
            &Body::Handle {
                file: &stream.file,
                offset,
                len,
            },
            &scopes,
            Some(send_timeout(client, len)),
            reporter,
        );
        match sent {
            Ok(r) if r.status() == StatusCode::ACCEPTED => {
                match location(client, &session, &r) {
                    Ok(next) => session = next,
                    Err(e) => break Err(crate::error_chain(&e)),
                }
                let held = range_end(&r).map_or(end + 1, |e| e + 1);
                reporter.on_progress(held.saturating_sub(offset));
                offset = held;
            }
            Ok(r) => break Err(format!("the registry answered {}", r.status())),
            Err(e) => break Err(crate::error_chain(&e)),
        }
    };
    reporter.on_complete();
    // The exporter never waits for the uploader: nothing to drain.
    match outcome {
        Ok(()) => Ok(session),
        Err(problem) => Err((Some(session), problem)),
    }
}

/// `PUT`s a manifest or index under `reference` (a tag or its digest) with
/// its media type, and checks the digest the registry answers.
fn put_manifest(
    client: &Client,
    repository: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
    destination: &str,
    reporter: &dyn Reporter,
) -> Result<(), RegistryError> {
    let url = client.url(&format!("{repository}/manifests/{reference}"))?;
    let scopes = [format!("repository:{repository}:pull,push")];
    let response = client.send(
        Method::PUT,
        &url,
        &[(CONTENT_TYPE.as_str(), media_type.to_string())],
        &Body::Bytes(bytes),
        &scopes,
        None,
        reporter,
    )?;
    if response.status() != StatusCode::CREATED {
        return Err(status_error(
            &format!("putting the manifest of {destination}"),
            &url,
            response,
        ));
    }
    let digest = crate::oci::digest_of(bytes);
    let answered = response
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _ = read_limited(response, MAX_DOCUMENT, &url);
    match answered {
        Some(a) if a != digest => Err(invalid(
            format!("the manifest of {destination}"),
            format!("the registry answered the digest {a}, but the manifest sent has {digest}"),
        )),
        None => {
            reporter.warn(&format!(
                "the registry did not confirm the manifest digest of {destination}"
            ));
            Ok(())
        }
        Some(_) => Ok(()),
    }
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

    // Layers whose digest is known from an earlier push: skipped or mounted
    // without being uploaded. The others are uploaded while being made.
    let mut chain: Vec<ImageRecord> = listing.chain(&record)?.into_iter().cloned().collect();
    chain.reverse();
    let mut cache = DigestCache::load(store);
    let mut decided: HashMap<String, BlobResult> = HashMap::new();
    for image in &chain {
        let Some((digest, size)) = cache.layers.get(&cache_key(image, options.compression)) else {
            continue;
        };
        let d = Descriptor {
            media_type: options.compression.oci_layer_media_type().to_string(),
            digest: digest.clone(),
            size: *size,
            platform: None,
            annotations: Default::default(),
            urls: Vec::new(),
        };
        if let Some(done) = skip_or_mount(client, repository, &d, &mount_from, reporter)? {
            decided.insert(image.full_name.clone(), done);
        }
    }
    let (announce, announced) = sync_channel(1);
    let tap = StreamTap {
        wanted: chain
            .iter()
            .map(|r| r.full_name.clone())
            .filter(|n| options.stream && !decided.contains_key(n))
            .collect(),
        announce: Mutex::new(announce),
    };
    let mut streamed: HashMap<String, Streamed> = HashMap::new();
    let exported = std::thread::scope(|scope| {
        let layout = &layout;
        let maker = scope.spawn(move || {
            let made = export_tapped(
                store,
                &[image.to_string()],
                layout,
                Format::OciDirectory,
                options.compression,
                crate::oci::compress::GZIP_LEVEL_PUSH,
                Some(&tap),
                reporter,
            );
            drop(tap);
            made
        });
        for stream in announced.iter() {
            let name = stream.full_name.clone();
            streamed.insert(name, stream_layer(client, repository, stream, reporter));
        }
        maker.join()
    });
    match exported {
        Ok(result) => {
            result?;
        }
        Err(_) => {
            return Err(invalid(
                format!("the export of {image}"),
                "it stopped unexpectedly",
            ))
        }
    }
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
    if manifest.layers.len() != chain.len() {
        return Err(invalid(
            "the exported manifest",
            format!(
                "it has {} layers for {} store images",
                manifest.layers.len(),
                chain.len()
            ),
        ));
    }

    let mut pushed = Pushed {
        destination: format!("{}/{repository}:{tag}", destination.registry),
        digest: String::new(),
        size: manifest_bytes.len() as u64,
        uploaded: 0,
        mounted: 0,
        skipped: 0,
    };
    let scopes = [format!("repository:{repository}:pull,push")];
    for (image, d) in chain.iter().zip(&manifest.layers) {
        let hex = spec::sha256_hex(&d.digest).unwrap_or_default();
        let file = blobs.join(hex);
        pushed.size += d.size;
        let known = cache
            .layers
            .get(&cache_key(image, options.compression))
            .map(|(digest, _)| digest.clone());
        let decision = decided.remove(&image.full_name);
        let done = match (decision, streamed.remove(&image.full_name)) {
            // Decided by a remembered digest that this export matches.
            (Some(done), _) if known.as_deref() == Some(d.digest.as_str()) => done,
            // The remembered digest was of other bytes (a layer another
            // tool compressed): the registry is asked for this one.
            (Some(_), _) => {
                upload_blob(client, repository, &file, d, &mount_from, options, reporter)?
            }
            (None, Some(Ok(session))) => {
                finish_upload(client, &session, d, &scopes, reporter)?;
                BlobResult::Uploaded
            }
            (None, Some(Err((session, problem)))) => {
                // The layer is whole on disk now: go on from where the
                // registry says the stream got to, or start it again.
                let resumed = session.and_then(|s| {
                    upload_status(client, &s, &scopes, options, reporter)
                        .filter(|(held, _)| *held <= d.size)
                        .map(|(held, next)| (held, next.unwrap_or(s)))
                });
                match resumed {
                    Some((held, next)) => {
                        reporter.warn(&format!(
                            "{problem}; resuming the upload of {} at byte {held}",
                            d.digest
                        ));
                        send_file(client, repository, &file, d, next, held, options, reporter)?;
                        BlobResult::Uploaded
                    }
                    None => {
                        reporter.warn(&format!(
                            "{problem}; uploading {} again from its start",
                            d.digest
                        ));
                        upload_blob(client, repository, &file, d, &mount_from, options, reporter)?
                    }
                }
            }
            (None, None) => {
                upload_blob(client, repository, &file, d, &mount_from, options, reporter)?
            }
        };
        cache.layers.insert(
            cache_key(image, options.compression),
            (d.digest.clone(), d.size),
        );
        match done {
            BlobResult::Uploaded => pushed.uploaded += 1,
            BlobResult::Mounted => pushed.mounted += 1,
            BlobResult::Skipped => pushed.skipped += 1,
        }
    }
    cache.save(store, reporter);
    pushed.size += manifest.config.size;
    match upload_blob(
        client,
        repository,
        &blobs.join(spec::sha256_hex(&manifest.config.digest).unwrap_or_default()),
        &manifest.config,
        &[],
        options,
        reporter,
    )? {
        BlobResult::Uploaded => pushed.uploaded += 1,
        BlobResult::Mounted => pushed.mounted += 1,
        BlobResult::Skipped => pushed.skipped += 1,
    }

    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| spec::MEDIA_OCI_MANIFEST.to_string());
    // The manifest by its digest, then under the tag an index whose one
    // entry carries the platform (os.version), as Microsoft publishes its
    // images: a Windows host picks the entry for its build.
    let digest = crate::oci::digest_of(&manifest_bytes);
    put_manifest(
        client,
        repository,
        &digest,
        &media_type,
        &manifest_bytes,
        &pushed.destination,
        reporter,
    )?;
    let mut entry = entry.clone();
    entry.annotations.clear();
    entry.media_type = media_type;
    let index = Index {
        schema_version: 2,
        media_type: Some(spec::MEDIA_OCI_INDEX.to_string()),
        manifests: vec![entry],
        annotations: Default::default(),
    };
    let index_bytes =
        serde_json::to_vec(&index).map_err(|e| invalid("the image index", e.to_string()))?;
    let index_digest = crate::oci::digest_of(&index_bytes);
    put_manifest(
        client,
        repository,
        &tag,
        spec::MEDIA_OCI_INDEX,
        &index_bytes,
        &pushed.destination,
        reporter,
    )?;
    pushed.size += index_bytes.len() as u64;
    let digest = index_digest;
    pushed.digest = digest;
    Ok(pushed)
}
