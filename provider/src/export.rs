//! Export-ContainerImage (`docker save`): installed images as an OCI image
//! layout, in a folder or in one tar that also holds Docker's
//! `manifest.json`, so `docker load`, containerd, skopeo and umoci read it.
//!
//! Each store image in an image's chain (parents first) becomes one layer,
//! built from disk in one pass: the layer tar is hashed (diff_id) as it is
//! compressed on all cores and hashed again (digest) as it is written to a
//! blob file. The same image exported twice gives the same digests.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::fsutil::dir::Dir;
use crate::oci::compress::{Compressor, Hashing};
use crate::oci::layer::{write_base_layer, write_child_layer, LayerError, Tree};
use crate::oci::spec::{
    self, Compression, Descriptor, DockerArchiveImage, History, ImageConfig, Index, LayoutFile,
    Manifest, Platform, RootFs,
};
use crate::oci::tar::{Header, Kind, TarWriter, Time};
use crate::progress::Reporter;
use crate::store::{
    DeletedPaths, ImageRecord, Store, StoreError, Tag, FILES_DIR, HIVES_DIR, METADATA_FILE,
    UTILITY_VM_FILES_DIR, UTILITY_VM_METADATA_FILE, WIM_XML_FILE,
};
use crate::wim::Sidecar;

/// How to write the export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One tar: the OCI layout plus Docker's `manifest.json`.
    OciArchive,
    /// The OCI layout as a folder.
    OciDirectory,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot export {image}")]
    Layer {
        image: String,
        #[source]
        source: LayerError,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} already exists and is not empty; choose another path")]
    Exists { path: PathBuf },
    #[error("{image} has no tag, and an archive names images by tag; give it one with Add-ContainerImageTag")]
    NoTag { image: String },
    #[error("the metadata of {image} is damaged: {reason}")]
    Metadata { image: String, reason: String },
}

/// One exported image, as Export-ContainerImage reports it.
#[derive(Clone, Debug)]
pub struct Exported {
    /// The reference as asked for.
    pub image: String,
    pub path: PathBuf,
    /// The manifest's digest.
    pub digest: String,
    /// Bytes written in all.
    pub size: u64,
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// The full reference containerd records for a tag (`nanoserver:1` is
/// `docker.io/library/nanoserver:1`, as docker names it).
fn full_reference(tag: &Tag) -> String {
    let first = tag.repository.split('/').next().unwrap_or_default();
    let has_host = tag.repository.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_host {
        tag.to_string()
    } else if tag.repository.contains('/') {
        format!("docker.io/{tag}")
    } else {
        format!("docker.io/library/{tag}")
    }
}

/// The OCI architecture of an image, from the `.wim`'s XML it keeps.
fn architecture(image_dir: &Dir) -> String {
    let arch = image_dir
        .read_limited(Path::new(WIM_XML_FILE), 16 << 20)
        .ok()
        .and_then(|bytes| crate::wim::xml::parse(&bytes).ok())
        .and_then(|info| info.images.first().and_then(|i| i.windows.as_ref()?.arch));
    match arch {
        Some(0) => "386",
        Some(5) => "arm",
        Some(12) => "arm64",
        _ => "amd64",
    }
    .to_string()
}

fn read_sidecar(image_dir: &Dir, rel: &str, image: &str) -> Result<Option<Sidecar>, ExportError> {
    match image_dir.read_limited(Path::new(rel), 1 << 30) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ExportError::Metadata {
                image: image.to_string(),
                reason: format!("{rel}: {e}"),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ExportError::Write {
            path: image_dir.display_path(Path::new(rel)),
            source,
        }),
    }
}

/// Follows each layer's blob file as it is written (a push uploads the
/// bytes while the layer is still being made).
pub trait LayerTap: Sync {
    /// The layer of the store image `full_name` starts; `reader` is the blob
    /// file, opened for reading (its position is the reader's own). Returns
    /// what is told how many bytes the file holds as they are written, or
    /// `None` when the layer is not wanted. Dropping the sink means the
    /// layer is finished or failed.
    fn begin(&self, full_name: &str, reader: File) -> Option<Box<dyn LayerSink>>;
}

/// Told how far a layer's blob file has been written.
pub trait LayerSink: Send {
    /// `total` bytes are in the file.
    fn written(&mut self, total: u64);
}

/// The blob file, telling a sink how much it holds after each write.
struct Counted {
    file: File,
    total: u64,
    sink: Option<Box<dyn LayerSink>>,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.total += n as u64;
        if let Some(sink) = &mut self.sink {
            sink.written(self.total);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A written layer.
struct Layer {
    descriptor: Descriptor,
    diff_id: String,
}

/// Writes the layer of one store image into `blobs` (a `blobs/sha256` folder).
fn write_layer(
    root: &Dir,
    record: &ImageRecord,
    blobs: &Dir,
    compression: Compression,
    gzip_level: u32,
    tap: Option<&dyn LayerTap>,
) -> Result<Layer, ExportError> {
    let image_dir = root
        .open_dir(Path::new(&record.full_name))
        .map_err(write_err(&root.display_path(Path::new(&record.full_name))))?;
    let files = image_dir
        .open_dir(Path::new(FILES_DIR))
        .map_err(write_err(&image_dir.display_path(Path::new(FILES_DIR))))?;
    let files_meta = read_sidecar(&image_dir, METADATA_FILE, &record.full_name)?;
    let uvm = if record.utility_vm {
        Some((
            image_dir
                .open_dir(Path::new(UTILITY_VM_FILES_DIR))
                .map_err(write_err(
                    &image_dir.display_path(Path::new(UTILITY_VM_FILES_DIR)),
                ))?,
            read_sidecar(&image_dir, UTILITY_VM_METADATA_FILE, &record.full_name)?,
        ))
    } else {
        None
    };
    let mut trees = vec![Tree {
        dir: &files,
        name: FILES_DIR,
        metadata: files_meta.as_ref(),
    }];
    if let Some((dir, meta)) = &uvm {
        trees.push(Tree {
            dir,
            name: UTILITY_VM_FILES_DIR,
            metadata: meta.as_ref(),
        });
    }

    // A child image: its deleted paths and delta hives.
    let child = if record.parent_image.is_some() {
        let deleted = DeletedPaths::read(&image_dir).map_err(|e| ExportError::Metadata {
            image: record.full_name.clone(),
            reason: e.to_string(),
        })?;
        let hives = match image_dir.open_dir(Path::new(HIVES_DIR)) {
            Ok(d) => Some(d),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ExportError::Write {
                    path: image_dir.display_path(Path::new(HIVES_DIR)),
                    source,
                })
            }
        };
        Some((deleted, hives))
    } else {
        None
    };
    let tmp_name = format!(".tmp-layer-{}", std::process::id());
    let tmp = Path::new(&tmp_name);
    let file = blobs
        .create_file(tmp, 0o644)
        .map_err(write_err(&blobs.display_path(tmp)))?;
    let result = (|| {
        let sink = match tap {
            Some(t) => {
                let reader = blobs
                    .open_regular(tmp)
                    .map_err(write_err(&blobs.display_path(tmp)))?;
                t.begin(&record.full_name, reader)
            }
            None => None,
        };
        let stored = Hashing::new(BufWriter::with_capacity(
            1 << 20,
            Counted {
                file,
                total: 0,
                sink,
            },
        ));
        let compressor = Compressor::with_gzip_level(compression, gzip_level, stored)
            .map_err(write_err(blobs.path()))?;
        let mut tar = TarWriter::new(Hashing::new(compressor));
        let written = match &child {
            None => write_base_layer(&mut tar, &trees),
            Some((deleted, hives)) => {
                write_child_layer(&mut tar, &trees[0], &deleted.paths, hives.as_ref())
            }
        };
        written.map_err(|source| ExportError::Layer {
            image: record.full_name.clone(),
            source,
        })?;
        let (compressor, diff_id, _) = tar.finish().map_err(write_err(blobs.path()))?.finish();
        let stored = compressor.finish().map_err(write_err(blobs.path()))?;
        let (buffered, digest, size) = stored.finish();
        let counted = buffered.into_inner().map_err(|e| ExportError::Write {
            path: blobs.display_path(tmp),
            source: e.into_error(),
        })?;
        counted
            .file
            .sync_all()
            .map_err(write_err(&blobs.display_path(tmp)))?;
        // Dropping the sink: the layer is whole.
        drop(counted);
        Ok((diff_id, digest, size))
    })();
    let (diff_id, digest, size) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = blobs.remove_file(tmp);
            return Err(e);
        }
    };
    let hex = spec::sha256_hex(&digest).unwrap_or_default().to_string();
    blobs
        .rename(tmp, blobs, Path::new(&hex))
        .map_err(write_err(&blobs.display_path(Path::new(&hex))))?;
    Ok(Layer {
        descriptor: Descriptor {
            media_type: compression.oci_layer_media_type().to_string(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
            urls: Vec::new(),
        },
        diff_id,
    })
}

/// Writes a JSON document as a blob; returns its descriptor.
fn write_json_blob<T: serde::Serialize>(
    blobs: &Dir,
    media_type: &str,
    value: &T,
) -> Result<Descriptor, ExportError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ExportError::Write {
        path: blobs.path().to_path_buf(),
        source: io::Error::other(e),
    })?;
    let digest = crate::oci::put_blob(blobs, &bytes).map_err(write_err(blobs.path()))?;
    Ok(Descriptor {
        media_type: media_type.to_string(),
        digest,
        size: bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
        urls: Vec::new(),
    })
}

/// Exports the images `references` name into `path`.
pub fn export(
    store: &Store,
    references: &[String],
    path: &Path,
    format: Format,
    compression: Compression,
    reporter: &dyn Reporter,
) -> Result<Vec<Exported>, ExportError> {
    export_tapped(
        store,
        references,
        path,
        format,
        compression,
        crate::oci::compress::GZIP_LEVEL,
        None,
        reporter,
    )
}

/// [`export`] with gzip at `gzip_level`, each layer's blob file followed
/// by `tap` as it is written.
#[allow(clippy::too_many_arguments)]
pub fn export_tapped(
    store: &Store,
    references: &[String],
    path: &Path,
    format: Format,
    compression: Compression,
    gzip_level: u32,
    tap: Option<&dyn LayerTap>,
    reporter: &dyn Reporter,
) -> Result<Vec<Exported>, ExportError> {
    let listing = store.listing(reporter)?;
    let root = store
        .open_root()?
        .ok_or_else(|| StoreError::UnknownReference {
            reference: references.first().cloned().unwrap_or_default(),
        })?;
    let mut wanted = Vec::new();
    for reference in references {
        let record = listing.resolve(reference)?;
        // The tag an image is written under: the reference when it is a
        // tag of the image, else the image's first tag.
        let tags = listing.tags.of(&record.full_name);
        let tag = Tag::parse(reference)
            .ok()
            .filter(|t| tags.contains(t))
            .or_else(|| tags.first().cloned())
            .ok_or_else(|| ExportError::NoTag {
                image: record.full_name.clone(),
            })?;
        wanted.push((reference.clone(), record, tag));
    }

    // The layout is built in a folder: the target itself, or a temporary
    // one beside the archive.
    let (layout_path, archive) = match format {
        Format::OciDirectory => (path.to_path_buf(), None),
        Format::OciArchive => {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(format!(".tmp-{}", std::process::id()));
            (path.with_file_name(name), Some(path.to_path_buf()))
        }
    };
    if std::fs::read_dir(&layout_path).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ExportError::Exists { path: layout_path });
    }
    let layout = Dir::create_all(&layout_path).map_err(write_err(&layout_path))?;
    let outcome = (|| {
        let blobs = layout
            .create_dir_all(Path::new("blobs/sha256"))
            .map_err(write_err(&layout_path.join("blobs/sha256")))?;
        let mut layers: BTreeMap<String, Layer> = BTreeMap::new();
        let mut index = Index {
            schema_version: 2,
            media_type: Some(spec::MEDIA_OCI_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        };
        let mut docker = Vec::new();
        let mut exported = Vec::new();
        for (reference, record, tag) in &wanted {
            let mut chain = listing.chain(record)?;
            chain.reverse();
            let mut descriptors = Vec::new();
            let mut diff_ids = Vec::new();
            let mut history = Vec::new();
            for image in &chain {
                if !layers.contains_key(&image.full_name) {
                    reporter.verbose(&format!("writing the layer of {}", image.full_name));
                    let layer = write_layer(&root, image, &blobs, compression, gzip_level, tap)?;
                    layers.insert(image.full_name.clone(), layer);
                }
                if let Some(layer) = layers.get(&image.full_name) {
                    descriptors.push(layer.descriptor.clone());
                    diff_ids.push(layer.diff_id.clone());
                }
                history.push(History {
                    created: Some(image.created.clone()),
                    created_by: Some(image.created_by()),
                    comment: None,
                    empty_layer: false,
                });
            }
            // The platform is the base image's: a child image's own
            // version is not a Windows build.
            let base = chain.first().copied().unwrap_or(*record);
            let base_dir = root
                .open_dir(Path::new(&base.full_name))
                .map_err(write_err(&root.display_path(Path::new(&base.full_name))))?;
            let os_version = base.version.clone();
            let config = ImageConfig {
                created: Some(record.created.clone()),
                architecture: architecture(&base_dir),
                os: "windows".into(),
                os_version: Some(os_version.clone()),
                config: None,
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids,
                },
                history,
            };
            let config_descriptor = write_json_blob(&blobs, spec::MEDIA_OCI_CONFIG, &config)?;
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(spec::MEDIA_OCI_MANIFEST.to_string()),
                config: config_descriptor.clone(),
                layers: descriptors.clone(),
                annotations: BTreeMap::new(),
            };
            let mut manifest_descriptor =
                write_json_blob(&blobs, spec::MEDIA_OCI_MANIFEST, &manifest)?;
            manifest_descriptor.platform = Some(Platform {
                architecture: config.architecture.clone(),
                os: "windows".into(),
                os_version: Some(os_version.clone()),
                ..Platform::default()
            });
            manifest_descriptor
                .annotations
                .insert(spec::ANNOTATION_REF_NAME.into(), tag.tag.clone());
            manifest_descriptor
                .annotations
                .insert(spec::ANNOTATION_CONTAINERD_NAME.into(), full_reference(tag));
            let blob_path = |d: &Descriptor| {
                format!(
                    "blobs/sha256/{}",
                    spec::sha256_hex(&d.digest).unwrap_or_default()
                )
            };
            docker.push(DockerArchiveImage {
                config: blob_path(&config_descriptor),
                repo_tags: vec![tag.to_string()],
                layers: descriptors.iter().map(blob_path).collect(),
            });
            exported.push(Exported {
                image: reference.clone(),
                path: path.to_path_buf(),
                digest: manifest_descriptor.digest.clone(),
                size: 0,
            });
            index.manifests.push(manifest_descriptor);
        }
        layout
            .write_atomic(
                Path::new("oci-layout"),
                &json(&LayoutFile {
                    image_layout_version: spec::LAYOUT_VERSION.into(),
                }),
            )
            .map_err(write_err(&layout_path.join("oci-layout")))?;
        layout
            .write_atomic(Path::new("index.json"), &json(&index))
            .map_err(write_err(&layout_path.join("index.json")))?;
        if archive.is_some() {
            layout
                .write_atomic(Path::new("manifest.json"), &json(&docker))
                .map_err(write_err(&layout_path.join("manifest.json")))?;
        }
        Ok(exported)
    })();
    let mut exported = match outcome {
        Ok(e) => e,
        Err(e) => {
            drop(layout);
            let _ = std::fs::remove_dir_all(&layout_path);
            return Err(e);
        }
    };
    let size = match &archive {
        None => dir_size(&layout).map_err(write_err(&layout_path))?,
        Some(target) => {
            let written = write_archive(&layout, target);
            drop(layout);
            let _ = std::fs::remove_dir_all(&layout_path);
            written?
        }
    };
    for e in &mut exported {
        e.size = size;
    }
    Ok(exported)
}

/// A layout document, written compactly. These types always serialize.
fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn dir_size(dir: &Dir) -> io::Result<u64> {
    let mut total = 0;
    for e in dir.entries()? {
        let rel = Path::new(&e.name);
        let stat = dir.stat(rel)?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory {
            total += dir_size(&dir.open_dir(rel)?)?;
        } else {
            total += u64::try_from(stat.st_size).unwrap_or(0);
        }
    }
    Ok(total)
}

/// Writes the layout folder as one tar at `target` (through a `.partial`
/// file, renamed when complete); returns its size.
fn write_archive(layout: &Dir, target: &Path) -> Result<u64, ExportError> {
    let mut partial_name = target.file_name().unwrap_or_default().to_os_string();
    partial_name.push(".partial");
    let partial = target.with_file_name(partial_name);
    let file = File::create(&partial).map_err(write_err(&partial))?;
    let fixed = Time { secs: 0, nanos: 0 };
    let entry = |path: &str, kind, size| Header {
        path: path.to_string(),
        kind,
        link: String::new(),
        size,
        mtime: fixed,
        atime: fixed,
        ctime: fixed,
        records: Vec::new(),
    };
    let result = (|| {
        let mut tar = TarWriter::new(BufWriter::with_capacity(1 << 20, file));
        for name in ["oci-layout", "index.json", "manifest.json"] {
            append_file(&mut tar, layout, name, &entry)?;
        }
        tar.append(&entry("blobs", Kind::Directory, 0), None)?;
        tar.append(&entry("blobs/sha256", Kind::Directory, 0), None)?;
        let blobs = layout.open_dir(Path::new("blobs/sha256"))?;
        let mut names: Vec<String> = blobs
            .entries()?
            .into_iter()
            .filter_map(|e| e.name.into_string().ok())
            .collect();
        names.sort();
        for n in names {
            let stat = blobs.stat(Path::new(&n))?;
            let mut f = blobs.open_regular(Path::new(&n))?;
            let size = u64::try_from(stat.st_size).unwrap_or(0);
            tar.append(
                &entry(&format!("blobs/sha256/{n}"), Kind::File, size),
                Some(&mut f as &mut dyn Read),
            )?;
        }
        let size = tar.written() + 1024;
        let out = tar.finish()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        io::Result::Ok(size)
    })();
    match result {
        Ok(size) => {
            std::fs::rename(&partial, target).map_err(write_err(target))?;
            Ok(size)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(ExportError::Write {
                path: target.to_path_buf(),
                source: e,
            })
        }
    }
}

fn append_file<W: Write>(
    tar: &mut TarWriter<W>,
    dir: &Dir,
    name: &str,
    entry: &dyn Fn(&str, Kind, u64) -> Header,
) -> io::Result<()> {
    let bytes = dir.read_limited(Path::new(name), 64 << 20)?;
    tar.append(
        &entry(name, Kind::File, bytes.len() as u64),
        Some(&mut &bytes[..]),
    )
}
