//! Import-ContainerImage (`docker load`): OCI layouts, OCI archives and
//! `docker save` archives of Windows images into the store.
//!
//! An archive's blobs are first copied into a staging folder of the store,
//! each checked against its name (the digest) as it is copied. Then, per
//! image: the manifest and config are read and checked (digest, size,
//! `os` windows), the layer is decompressed and unpacked into a staging
//! image while its digest, size and uncompressed digest (diff_id) are
//! computed; only when all three match is the image published. An image
//! already in the store (the same config digest) is not installed again;
//! its tags are added.
//!
//! Images of several layers become one store image per layer, each the
//! parent of the next (the base an OS image, the others child images with
//! their `Hives/` and deleted paths); a layer the store already has on the
//! same parent (the same diff_id) is reused. An image's layers are imported
//! together: when one fails, those installed before it are removed again.
//! Lower layers are named `layer-<chain id, 12 hex digits>` and have the
//! chain id (as Docker computes it) as their Id; the top one carries the
//! image's name, tags and config digest.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::fsutil::dir::Dir;
use crate::oci::compress::Hashing;
use crate::oci::layer_read::{unpack_layer, LayerKind, LayerReadError};
use crate::oci::spec::{
    self, Compression, Descriptor, DockerArchiveImage, ImageConfig, Index, LayoutFile, Manifest,
};
use crate::oci::tar_read::{EntryKind, TarError, TarReader};
use crate::progress::Reporter;
use crate::store::{
    DeletedPaths, ImageRecord, NewImage, Store, StoreError, StoreLock, Tag, DELETED_FILE,
    METADATA_FILE, UTILITY_VM_METADATA_FILE,
};
use crate::version::Version;

/// The largest JSON document (index, manifest, config) read.
const MAX_DOCUMENT: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} is not a valid image: {reason}")]
    Invalid { what: String, reason: String },
    #[error("the archive is damaged")]
    Archive(#[source] TarError),
    #[error("the layer {digest} is refused")]
    Layer {
        digest: String,
        #[source]
        source: LayerReadError,
    },
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

/// Reads `rel` of `dir` whole, at most `limit` bytes.
fn read_small(dir: &Dir, rel: &str, limit: u64) -> Result<Vec<u8>, ImportError> {
    dir.read_limited(Path::new(rel), limit)
        .map_err(|source| ImportError::Read {
            path: dir.display_path(Path::new(rel)),
            source,
        })
}

/// A verified blob of the layout, read whole (documents only).
fn read_blob(blobs: &Dir, d: &Descriptor, what: &str) -> Result<Vec<u8>, ImportError> {
    let hex = spec::sha256_hex(&d.digest)
        .ok_or_else(|| invalid(what, format!("'{}' is not a sha256 digest", d.digest)))?;
    if d.size > MAX_DOCUMENT {
        return Err(invalid(
            what,
            format!("{} bytes, more than a document may have", d.size),
        ));
    }
    let bytes = read_small(blobs, hex, MAX_DOCUMENT)?;
    if bytes.len() as u64 != d.size {
        return Err(invalid(
            what,
            format!("{} bytes where the descriptor says {}", bytes.len(), d.size),
        ));
    }
    let actual = crate::oci::digest_of(&bytes);
    if actual != d.digest {
        return Err(invalid(
            what,
            format!("its digest is {actual}, not {}", d.digest),
        ));
    }
    Ok(bytes)
}

/// Copies an archive's layout files and blobs into `into` (a folder in the
/// store's staging area); each blob is checked against its name. Other
/// files (the layers and configs of Docker's older `docker save` format,
/// named `<hex>.json`, `<id>/layer.tar`) are stored as blobs under their
/// digest; the map from their names in the archive to those digests is
/// returned.
fn extract_archive(
    archive: &Path,
    into: &Dir,
    checked: &mut std::collections::BTreeSet<String>,
) -> Result<BTreeMap<String, String>, ImportError> {
    let file = crate::fsutil::open_regular(archive).map_err(|source| ImportError::Read {
        path: archive.to_path_buf(),
        source,
    })?;
    let mut tar = TarReader::new(BufReader::with_capacity(1 << 20, file));
    let blobs = into
        .create_dir_all(Path::new("blobs/sha256"))
        .map_err(|source| ImportError::Read {
            path: into.path().to_path_buf(),
            source,
        })?;
    let mut others = BTreeMap::new();
    let mut n = 0u64;
    while let Some(entry) = tar.next_entry().map_err(ImportError::Archive)? {
        let name = entry
            .path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if entry.kind != Some(EntryKind::File) {
            continue;
        }
        if name
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(invalid(
                archive.display().to_string(),
                format!("it holds the name '{}'", name.escape_debug()),
            ));
        }
        enum To {
            Document(String),
            Blob(String),
            Other(String),
        }
        let to = match name.as_str() {
            "oci-layout" | "index.json" | "manifest.json" => {
                if entry.size > MAX_DOCUMENT {
                    return Err(invalid(
                        archive.display().to_string(),
                        format!("{name} is too large"),
                    ));
                }
                To::Document(name.clone())
            }
            _ => match name.strip_prefix("blobs/sha256/") {
                Some(hex) if spec::sha256_hex(&format!("sha256:{hex}")).is_some() => {
                    To::Blob(hex.to_string())
                }
                _ => {
                    n += 1;
                    To::Other(format!(".tmp-other-{n}"))
                }
            },
        };
        let (dir, rel) = match &to {
            To::Document(r) => (into, r.clone()),
            To::Blob(r) | To::Other(r) => (&blobs, r.clone()),
        };
        let rel_path = Path::new(&rel);
        let _ = dir.remove_file(rel_path);
        let out = dir
            .create_file(rel_path, 0o644)
            .map_err(|source| ImportError::Read {
                path: dir.display_path(rel_path),
                source,
            })?;
        let mut hashing = Hashing::new(io::BufWriter::with_capacity(1 << 20, out));
        io::copy(&mut tar.data(), &mut hashing)
            .map_err(|e| ImportError::Archive(TarError::Io(e)))?;
        let (writer, digest, _) = hashing.finish();
        writer.into_inner().map_err(|e| ImportError::Read {
            path: dir.display_path(rel_path),
            source: e.into_error(),
        })?;
        match to {
            To::Blob(hex) if digest != format!("sha256:{hex}") => {
                return Err(invalid(
                    format!("the blob blobs/sha256/{hex}"),
                    format!("its content has the digest {digest}"),
                ));
            }
            To::Blob(hex) => {
                checked.insert(hex);
            }
            To::Other(tmp) => {
                let hex = spec::sha256_hex(&digest).unwrap_or_default().to_string();
                checked.insert(hex.clone());
                blobs
                    .rename(Path::new(&tmp), &blobs, Path::new(&hex))
                    .map_err(|source| ImportError::Read {
                        path: blobs.display_path(Path::new(&hex)),
                        source,
                    })?;
                others.insert(name, hex);
            }
            _ => {}
        }
    }
    Ok(others)
}

/// One image the source names.
struct Wanted {
    manifest: Descriptor,
    tags: Vec<Tag>,
}

/// `docker.io/library/nano:1` → `nano:1`; other references stay whole.
fn short_reference(full: &str) -> String {
    full.strip_prefix("docker.io/library/")
        .or_else(|| full.strip_prefix("docker.io/"))
        .unwrap_or(full)
        .to_string()
}

/// The images of a layout (index.json), or of `docker save`'s manifest.json
/// when the archive has no OCI index.
fn wanted_images(
    layout: &Dir,
    blobs: &Dir,
    others: &BTreeMap<String, String>,
    what: &str,
) -> Result<Vec<Wanted>, ImportError> {
    let has = |n: &str| matches!(layout.file_type(Path::new(n)), Ok(Some(_)));
    if has("oci-layout") {
        let bytes = read_small(layout, "oci-layout", 4096)?;
        let l: LayoutFile = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(what, format!("oci-layout: {e}")))?;
        if l.image_layout_version != spec::LAYOUT_VERSION {
            return Err(invalid(
                what,
                format!(
                    "oci-layout says version {}, not {}",
                    l.image_layout_version,
                    spec::LAYOUT_VERSION
                ),
            ));
        }
        let bytes = read_small(layout, "index.json", MAX_DOCUMENT)?;
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(what, format!("index.json: {e}")))?;
        let mut out = Vec::new();
        for d in index.manifests {
            // containerd's full name; else a ref.name that is a whole
            // reference (as skopeo writes it), not only a tag.
            let full = d
                .annotations
                .get(spec::ANNOTATION_CONTAINERD_NAME)
                .or_else(|| {
                    d.annotations
                        .get(spec::ANNOTATION_REF_NAME)
                        .filter(|r| r.contains(':') || r.contains('/'))
                });
            let tags: Vec<Tag> = full
                .map(|n| short_reference(n))
                .into_iter()
                .filter_map(|r| Tag::parse(&r).ok())
                .collect();
            out.push(Wanted { manifest: d, tags });
        }
        return Ok(out);
    }
    if has("manifest.json") {
        let bytes = read_small(layout, "manifest.json", MAX_DOCUMENT)?;
        let images: Vec<DockerArchiveImage> = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(what, format!("manifest.json: {e}")))?;
        let mut out = Vec::new();
        for image in images {
            // A manifest made from the archive's own entries.
            let blob = |p: &str| -> Result<Descriptor, ImportError> {
                let hex = p
                    .strip_prefix("blobs/sha256/")
                    .filter(|h| spec::sha256_hex(&format!("sha256:{h}")).is_some())
                    .or_else(|| others.get(p).map(String::as_str))
                    .ok_or_else(|| {
                        invalid(
                            what,
                            format!("manifest.json names '{p}', which the archive does not hold"),
                        )
                    })?;
                let size = blobs
                    .stat(Path::new(hex))
                    .map_err(|source| ImportError::Read {
                        path: blobs.display_path(Path::new(hex)),
                        source,
                    })?
                    .st_size;
                Ok(Descriptor {
                    media_type: String::new(),
                    digest: format!("sha256:{hex}"),
                    size: u64::try_from(size).unwrap_or(0),
                    platform: None,
                    annotations: BTreeMap::new(),
                    urls: Vec::new(),
                })
            };
            let config = blob(&image.config)?;
            let layers = image
                .layers
                .iter()
                .map(|l| blob(l))
                .collect::<Result<Vec<_>, _>>()?;
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(spec::MEDIA_DOCKER_MANIFEST.into()),
                config,
                layers,
                annotations: BTreeMap::new(),
            };
            let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
            let digest =
                crate::oci::put_blob(blobs, &bytes).map_err(|source| ImportError::Read {
                    path: blobs.path().to_path_buf(),
                    source,
                })?;
            out.push(Wanted {
                manifest: Descriptor {
                    media_type: spec::MEDIA_DOCKER_MANIFEST.into(),
                    digest,
                    size: bytes.len() as u64,
                    platform: None,
                    annotations: BTreeMap::new(),
                    urls: Vec::new(),
                },
                tags: image
                    .repo_tags
                    .iter()
                    .filter_map(|t| Tag::parse(t).ok())
                    .collect(),
            });
        }
        return Ok(out);
    }
    Err(invalid(
        what,
        "it holds neither an OCI layout (oci-layout, index.json) nor Docker's manifest.json",
    ))
}

/// Checks a blob's size and digest by reading it once (only its size when
/// its digest was checked as it was copied out of an archive).
fn verify_blob(
    blobs: &Dir,
    hex: &str,
    d: &Descriptor,
    checked: &std::collections::BTreeSet<String>,
) -> Result<(), ImportError> {
    let path = blobs.display_path(Path::new(hex));
    if checked.contains(hex) {
        let size = blobs
            .stat(Path::new(hex))
            .map_err(|source| ImportError::Read {
                path: path.clone(),
                source,
            })?
            .st_size;
        if u64::try_from(size).ok() != Some(d.size) {
            return Err(invalid(
                format!("the blob {}", d.digest),
                format!("it has {size} bytes where the manifest says {}", d.size),
            ));
        }
        return Ok(());
    }
    let file = blobs
        .open_regular(Path::new(hex))
        .map_err(|source| ImportError::Read {
            path: path.clone(),
            source,
        })?;
    let mut hashing = Hashing::new(io::sink());
    let n = io::copy(
        &mut BufReader::with_capacity(1 << 20, file).take(d.size.saturating_add(1)),
        &mut hashing,
    )
    .map_err(|source| ImportError::Read { path, source })?;
    let (_, digest, _) = hashing.finish();
    if n != d.size {
        return Err(invalid(
            format!("the blob {}", d.digest),
            format!(
                "it has {} bytes where the manifest says {}",
                if n > d.size {
                    format!("more than {n}")
                } else {
                    n.to_string()
                },
                d.size
            ),
        ));
    }
    if digest != d.digest {
        return Err(invalid(
            format!("the blob {}", d.digest),
            format!("its content has the digest {digest}"),
        ));
    }
    Ok(())
}

/// Detects the compression of a layer blob from its first bytes (Docker's
/// archives do not say).
fn sniff(blobs: &Dir, hex: &str) -> Compression {
    let mut head = [0u8; 4];
    let ok = blobs
        .open_regular(Path::new(hex))
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok();
    match head {
        [0x1f, 0x8b, _, _] if ok => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] if ok => Compression::Zstd,
        _ => Compression::None,
    }
}

/// The store name of an imported image: the repository's last part.
fn image_name(tags: &[Tag], config_hex: &str) -> String {
    let candidate = tags
        .first()
        .and_then(|t| t.repository.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    if crate::names::check_name(&candidate).is_ok() {
        candidate
    } else {
        format!("image-{}", &config_hex[..12.min(config_hex.len())])
    }
}

/// The publisher of an imported image: `CN=` and the registry of its first
/// tag (`docker.io` when the tag names none), `:` written as `-`.
fn image_publisher(tags: &[Tag]) -> String {
    let registry = tags
        .first()
        .and_then(|t| {
            let first = t.repository.split('/').next()?;
            (t.repository.contains('/')
                && (first.contains('.') || first.contains(':') || first == "localhost"))
                .then(|| first.replace(':', "-"))
        })
        .unwrap_or_else(|| "docker.io".to_string());
    format!("CN={registry}")
}

/// Decompresses and unpacks the layer blob `hex` into `target`, checking
/// its uncompressed digest against `diff_id`; writes the metadata files.
fn unpack_blob(
    blobs: &Dir,
    hex: &str,
    compression: Compression,
    layer_digest: &str,
    diff_id: &str,
    kind: LayerKind,
    target: &Dir,
) -> Result<(), ImportError> {
    let read_err = |source: io::Error| ImportError::Read {
        path: blobs.display_path(Path::new(hex)),
        source,
    };
    let file = BufReader::with_capacity(
        1 << 20,
        blobs.open_regular(Path::new(hex)).map_err(read_err)?,
    );
    let decompressed: Box<dyn Read + Send> = match compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(read_err)?)
        }
    };
    // Decompressing runs on a core of its own, ahead of the unpacking.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
        scope.spawn(move || {
            let mut source = decompressed;
            loop {
                let mut buf = vec![0u8; 4 << 20];
                let mut filled = 0;
                let result = loop {
                    match source.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(filled);
                // Stops at the end, on an error, or when the reader is gone.
                match result {
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    Ok(()) if filled == 0 => return,
                    Ok(()) => {
                        if tx.send(Ok(buf)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        unpack_decompressed(
            Ahead {
                chunks: rx,
                current: Vec::new(),
                at: 0,
            },
            layer_digest,
            diff_id,
            kind,
            target,
            &read_err,
        )
    })
}

/// Reads the chunks another thread decompressed, in order.
struct Ahead {
    chunks: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for Ahead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.current.len() {
            match self.chunks.recv() {
                Ok(Ok(next)) => {
                    self.current = next;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.at);
        out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Unpacks the decompressed layer `decompressed`, checking its digest
/// against `diff_id`; writes the metadata files.
fn unpack_decompressed(
    decompressed: impl Read,
    layer_digest: &str,
    diff_id: &str,
    kind: LayerKind,
    target: &Dir,
    read_err: &dyn Fn(io::Error) -> ImportError,
) -> Result<(), ImportError> {
    // The diff_id: the digest of the decompressed stream as read.
    let mut hashing = Hashing::new(decompressed);
    let unpacked = {
        let mut tar = TarReader::new(&mut hashing);
        let u = unpack_layer(&mut tar, target, kind).map_err(|source| ImportError::Layer {
            digest: layer_digest.to_string(),
            source,
        })?;
        // The end of the stream counts in the diff_id too.
        io::copy(&mut tar.into_inner(), &mut io::sink()).map_err(read_err)?;
        u
    };
    let (_, actual, _) = hashing.finish();
    if actual != diff_id {
        return Err(invalid(
            format!("the layer {layer_digest}"),
            format!("its uncompressed digest is {actual}, but the config says {diff_id}"),
        ));
    }
    let write = |rel: &str, bytes: Vec<u8>| -> Result<(), ImportError> {
        target
            .write_atomic(Path::new(rel), &bytes)
            .map_err(|source| ImportError::Read {
                path: target.display_path(Path::new(rel)),
                source,
            })
    };
    fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
        serde_json::to_vec(value).unwrap_or_default()
    }
    write(METADATA_FILE, json(&unpacked.files))?;
    if let Some(u) = &unpacked.utility_vm {
        write(UTILITY_VM_METADATA_FILE, json(u))?;
    }
    if kind == LayerKind::Child {
        write(DELETED_FILE, json(&DeletedPaths::new(unpacked.deleted)))?;
    }
    Ok(())
}

/// Imports the images of the layout folder or archive at `path`.
pub fn import(
    lock: &mut StoreLock<'_>,
    path: &Path,
    force: bool,
    reporter: &dyn Reporter,
) -> Result<Vec<ImageRecord>, ImportError> {
    import_verified(lock, path, force, Default::default(), reporter)
}

/// [`import`] of a layout folder whose blobs named in `verified` (hex
/// digests) were checked against their digest as they were written (a
/// pull's downloads): only their sizes are checked again.
pub fn import_verified(
    lock: &mut StoreLock<'_>,
    path: &Path,
    force: bool,
    verified: std::collections::BTreeSet<String>,
    reporter: &dyn Reporter,
) -> Result<Vec<ImageRecord>, ImportError> {
    let what = path.display().to_string();
    let is_dir = std::fs::metadata(path)
        .map(|m| m.is_dir())
        .map_err(|source| ImportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    // An archive is unpacked into the store's staging area first.
    let staging_root = lock.store().root().join(".staging");
    let extracted;
    let mut others = BTreeMap::new();
    let mut checked = verified;
    let layout = if is_dir {
        Dir::open(path).map_err(|source| ImportError::Read {
            path: path.to_path_buf(),
            source,
        })?
    } else {
        extracted = tempfile::Builder::new()
            .prefix("import-")
            .tempdir_in({
                std::fs::create_dir_all(&staging_root).map_err(|source| ImportError::Read {
                    path: staging_root.clone(),
                    source,
                })?;
                &staging_root
            })
            .map_err(|source| ImportError::Read {
                path: staging_root.clone(),
                source,
            })?;
        let dir = Dir::open(extracted.path()).map_err(|source| ImportError::Read {
            path: extracted.path().to_path_buf(),
            source,
        })?;
        others = extract_archive(path, &dir, &mut checked)?;
        dir
    };
    let blobs = layout
        .open_dir(Path::new("blobs/sha256"))
        .map_err(|source| ImportError::Read {
            path: layout.display_path(Path::new("blobs/sha256")),
            source,
        })?;
    let wanted = wanted_images(&layout, &blobs, &others, &what)?;
    if wanted.is_empty() {
        return Err(invalid(what, "it names no image"));
    }
    let mut added = Vec::new();
    for w in wanted {
        let manifest_bytes = read_blob(&blobs, &w.manifest, "the manifest")?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| invalid(format!("the manifest {}", w.manifest.digest), e.to_string()))?;
        let config_bytes = read_blob(&blobs, &manifest.config, "the image config")?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
            invalid(
                format!("the config {}", manifest.config.digest),
                e.to_string(),
            )
        })?;
        if config.os != "windows" {
            return Err(invalid(
                format!("the image {}", manifest.config.digest),
                format!("its os is '{}', not windows", config.os),
            ));
        }
        if manifest.layers.len() != config.rootfs.diff_ids.len() {
            return Err(invalid(
                format!("the image {}", manifest.config.digest),
                "its manifest and config count different layers",
            ));
        }
        if manifest.layers.is_empty() {
            return Err(invalid(
                format!("the image {}", manifest.config.digest),
                "it has no layers",
            ));
        }
        let config_hex = spec::sha256_hex(&manifest.config.digest)
            .unwrap_or_default()
            .to_string();
        if let Some(existing) = lock.images().iter().find(|r| r.id == config_hex).cloned() {
            if !force {
                reporter.verbose(&format!("{} is already in the store", existing.full_name));
                for t in &w.tags {
                    lock.add_tag(t.clone(), &existing.full_name)?;
                }
                added.push(existing);
                continue;
            }
        }
        // Every blob is checked before the store changes.
        let mut plan = Vec::new();
        for layer in &manifest.layers {
            let hex = spec::sha256_hex(&layer.digest)
                .ok_or_else(|| {
                    invalid(
                        "a layer",
                        format!("'{}' is not a sha256 digest", layer.digest),
                    )
                })?
                .to_string();
            let compression = match Compression::of_layer_media_type(&layer.media_type) {
                Some(c) => c,
                None if layer.media_type.is_empty() => sniff(&blobs, &hex),
                None => {
                    return Err(invalid(
                        format!("the layer {}", layer.digest),
                        format!(
                            "the media type '{}' is not a layer this tool reads",
                            layer.media_type
                        ),
                    ))
                }
            };
            plan.push((hex, compression));
        }
        let version: Version = config
            .os_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| Version::from_parts([0, 0, 0, 0]));
        let layer_history: Vec<&spec::History> =
            config.history.iter().filter(|h| !h.empty_layer).collect();
        let top = manifest.layers.len() - 1;
        let mut parent: Option<String> = None;
        let mut chain_id = String::new();
        let mut installed_here: Vec<String> = Vec::new();
        let mut outcome = Ok(());
        for (i, (layer, (hex, compression))) in manifest.layers.iter().zip(&plan).enumerate() {
            let diff_id = config.rootfs.diff_ids[i].clone();
            chain_id = if i == 0 {
                diff_id.clone()
            } else {
                crate::oci::digest_of(format!("{chain_id} {diff_id}").as_bytes())
            };
            if let Some(existing) = lock.find_layer(&diff_id, parent.as_deref()).cloned() {
                if i < top || !force {
                    reporter.verbose(&format!(
                        "the layer {diff_id} is already in the store as {}",
                        existing.full_name
                    ));
                    if i == top {
                        for t in &w.tags {
                            lock.add_tag(t.clone(), &existing.full_name)?;
                        }
                        added.push(existing.clone());
                    }
                    parent = Some(existing.full_name);
                    continue;
                }
            }
            if let Err(e) = verify_blob(&blobs, hex, layer, &checked) {
                outcome = Err(e);
                break;
            }
            let kind = if i == 0 {
                LayerKind::Base
            } else {
                LayerKind::Child
            };
            let new = if i == top {
                NewImage {
                    name: image_name(&w.tags, &config_hex),
                    publisher: Some(image_publisher(&w.tags)),
                    version: version.clone(),
                    id: config_hex.clone(),
                    is_os_image: kind == LayerKind::Base,
                    parent_image: parent.clone(),
                    tags: Some(w.tags.clone()),
                    created: config.created.clone(),
                    diff_id: Some(diff_id.clone()),
                }
            } else {
                let chain_hex = spec::sha256_hex(&chain_id).unwrap_or_default().to_string();
                NewImage {
                    name: format!("layer-{}", &chain_hex[..12.min(chain_hex.len())]),
                    publisher: Some(image_publisher(&w.tags)),
                    version: version.clone(),
                    id: chain_hex,
                    is_os_image: kind == LayerKind::Base,
                    parent_image: parent.clone(),
                    tags: Some(Vec::new()),
                    created: layer_history
                        .get(i)
                        .and_then(|h| h.created.clone())
                        .or_else(|| config.created.clone()),
                    diff_id: Some(diff_id.clone()),
                }
            };
            let layer_digest = layer.digest.clone();
            let fill = |staged: &Path| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
                let target = Dir::open(staged)?;
                unpack_blob(
                    &blobs,
                    hex,
                    *compression,
                    &layer_digest,
                    &diff_id,
                    kind,
                    &target,
                )
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            };
            match lock.install(new, force && i == top, fill, reporter) {
                Ok(record) => {
                    installed_here.push(record.full_name.clone());
                    parent = Some(record.full_name.clone());
                    if i == top {
                        added.push(record);
                    }
                }
                Err(e) => {
                    outcome = Err(e.into());
                    break;
                }
            }
        }
        if let Err(e) = outcome {
            // The layers installed for this image go again, newest first:
            // an image is imported whole or not at all.
            for full_name in installed_here.iter().rev() {
                if let Err(undo) = lock.remove(full_name, reporter) {
                    reporter.warn(&format!(
                        "could not remove the partly imported layer {full_name}: {}",
                        crate::error_chain(&undo)
                    ));
                }
            }
            return Err(e);
        }
    }
    drop(blobs);
    Ok(added)
}

/// Imports into the store of `store`, under its lock.
pub fn import_into(
    store: &Store,
    path: &Path,
    force: bool,
    reporter: &dyn Reporter,
) -> Result<Vec<ImageRecord>, ImportError> {
    let mut lock = store.lock(reporter)?;
    import(&mut lock, path, force, reporter)
}
