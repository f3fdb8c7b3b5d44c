//! Opening a WIM: the header, the blob table and the XML data, all checked
//! against the file; and reading blobs with their SHA-1 verified.

use std::path::Path;

use sha1::{Digest, Sha1 as Sha1Hasher};

use super::blob_hash::BlobHash;
use super::format::{
    self, header_flags, resource_flags, BlobTableEntry, WimHeader, HEADER_SIZE, PWM_MAGIC,
    SOLID_RESOURCE_MAGIC_SIZE, VERSION_DEFAULT, VERSION_SOLID, WIM_MAGIC,
};
use super::metadata::{self, Image, Sha1, ZERO_HASH};
use super::resource::{max_chunk_size, ChunkRef, ResourceError, ResourceSpec, Source};
use super::{
    xml, Blob, BlobLocation, Compression, FastMap, SolidRun, WimError, WimFile, WimHeaderInfo,
};

/// Largest XML data accepted. Real XML data is a few kilobytes per image;
/// the limit keeps the raw bytes and their decoded text well inside the
/// memory bar.
pub(crate) const MAX_XML: u64 = 16 << 20;
/// Largest metadata resource accepted. It is read whole and parsed (about
/// 130 bytes per entry plus its name, beside the resource's own bytes): at
/// this limit even the smallest possible entries keep an apply within
/// DESIGN's 128 MiB of peak memory, and there is room for about 165,000
/// entries with 100-character names. Its bytes are allocated as they are
/// decoded, never from the declared size.
pub(crate) const MAX_METADATA: u64 = 48 << 20;
/// Decoded bytes handled per batch when streaming chunks shared by blobs
/// (solid resources) or one large blob, and per group of a large blob once
/// every core is free to help with it. Each batch ends with the threads
/// that share it waiting for each other, so smaller batches cost wall and
/// CPU time (4 MiB: 1-4% more, 1 MiB: 25% more wall time, measured when
/// every file was streamed in batches); larger ones only cost memory (16
/// MiB: no faster; docs/BENCHMARKS.md). A chunk this big or bigger (a solid
/// chunk) is a batch of its own.
pub(crate) const BATCH_BYTES: u64 = 8 << 20;

impl WimFile {
    /// Opens and checks a `.wim` file: header, blob table, XML data.
    pub fn open(path: &Path) -> Result<WimFile, WimError> {
        let io = |source| WimError::Io {
            path: path.to_path_buf(),
            source,
        };
        let invalid = |reason: String| WimError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        // Devices and FIFOs are refused (a FIFO would hang the reader).
        let file = crate::fsutil::open_regular(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < HEADER_SIZE as u64 {
            return Err(invalid(format!(
                "it has {len} bytes, fewer than a WIM header's {HEADER_SIZE}"
            )));
        }
        let mut head = [0u8; HEADER_SIZE];
        let probe = Source::new(file.try_clone().map_err(io)?, Compression::None, 0).map_err(io)?;
        probe
            .read_at(0, &mut head)
            .map_err(|source| resource_error(path, "the header", source))?;
        let header: WimHeader =
            format::parse(&head).ok_or_else(|| invalid("the header is unreadable".into()))?;
        if header.magic == PWM_MAGIC {
            return Err(WimError::Unsupported {
                path: path.to_path_buf(),
                what: "a pipable WIM (WLPWM)".into(),
            });
        }
        if header.magic != WIM_MAGIC {
            return Err(invalid("it does not start with the WIM magic MSWIM".into()));
        }
        if header.header_size as usize != HEADER_SIZE {
            return Err(invalid(format!(
                "the header size is {}, not {HEADER_SIZE}",
                header.header_size
            )));
        }
        if header.version != VERSION_DEFAULT && header.version != VERSION_SOLID {
            return Err(WimError::Unsupported {
                path: path.to_path_buf(),
                what: format!("WIM version {:#x}", header.version),
            });
        }
        if header.flags & header_flags::SPANNED != 0 || header.total_parts != 1 {
            return Err(WimError::Unsupported {
                path: path.to_path_buf(),
                what: format!(
                    "a split WIM (part {} of {})",
                    header.part_number, header.total_parts
                ),
            });
        }
        if header.part_number != 1 {
            return Err(invalid(format!("part number {} of 1", header.part_number)));
        }
        let compression = if header.flags & header_flags::COMPRESSION == 0 {
            Compression::None
        } else if header.flags & header_flags::COMPRESS_LZMS != 0 {
            Compression::Lzms
        } else if header.flags & header_flags::COMPRESS_LZX != 0 {
            Compression::Lzx
        } else if header.flags & (header_flags::COMPRESS_XPRESS | header_flags::COMPRESS_XPRESS2)
            != 0
        {
            Compression::Xpress
        } else {
            return Err(invalid("compressed, but with no known compression".into()));
        };
        let chunk_size = if compression == Compression::None {
            header.chunk_size
        } else if header.chunk_size == 0 {
            32 * 1024
        } else if header.chunk_size.is_power_of_two()
            && header.chunk_size <= max_chunk_size(compression)
        {
            header.chunk_size
        } else {
            return Err(invalid(format!(
                "bad chunk size {} (a power of two, at most {} for {compression})",
                header.chunk_size,
                max_chunk_size(compression)
            )));
        };
        let source = Source::new(file, compression, chunk_size).map_err(io)?;

        // Blob table.
        let table_spec = ResourceSpec::from_header(&header.blob_table);
        let table = source
            .read_resource(&table_spec, len)
            .map_err(|e| resource_error(path, "the blob table", e))?;
        if table.len() % BlobTableEntry::SIZE != 0 {
            return Err(invalid(format!(
                "the blob table's size {} is not a multiple of {}",
                table.len(),
                BlobTableEntry::SIZE
            )));
        }
        let mut blobs: FastMap<Sha1, Blob> = FastMap::default();
        blobs.reserve(table.len() / BlobTableEntry::SIZE);
        let mut images: Vec<Blob> = Vec::new();
        let mut runs: Vec<SolidRun> = Vec::new();
        // The run being collected: resources then blobs.
        let mut run_open = false;
        let mut run_has_blobs = false;
        for raw in table.chunks_exact(BlobTableEntry::SIZE) {
            let entry: BlobTableEntry = format::parse(raw)
                .ok_or_else(|| invalid("a blob table entry is unreadable".into()))?;
            let spec = ResourceSpec::from_header(&entry.resource);
            let flags = spec.flags;
            if flags & resource_flags::SOLID == 0 {
                run_open = false;
            }
            if entry.part_number != 1 {
                continue;
            }
            if flags & resource_flags::SOLID != 0 {
                if entry.resource.uncompressed_size == SOLID_RESOURCE_MAGIC_SIZE {
                    if !run_open || run_has_blobs {
                        runs.push(SolidRun::default());
                        run_open = true;
                        run_has_blobs = false;
                    }
                    let plan = source.plan_solid(&spec).map_err(|e| {
                        resource_error(path, &format!("the solid resource at {}", spec.offset), e)
                    })?;
                    if let Some(run) = runs.last_mut() {
                        run.starts.push(run.total);
                        run.total = run.total.saturating_add(plan.size);
                        run.resources.push((spec, plan));
                    }
                    continue;
                }
                if !run_open {
                    return Err(invalid(
                        "a solid blob is not preceded by its solid resource".into(),
                    ));
                }
                run_has_blobs = true;
                if entry.hash == ZERO_HASH || blobs.contains_key(&entry.hash) {
                    continue;
                }
                let size = spec.stored_size;
                let total = runs.last().map_or(0, |r| r.total);
                if spec.offset.checked_add(size).is_none_or(|end| end > total) {
                    return Err(invalid(format!(
                        "a solid blob ({size} bytes at {}) lies past its resources' {total} bytes",
                        spec.offset
                    )));
                }
                blobs.insert(
                    entry.hash,
                    Blob {
                        hash: entry.hash,
                        size,
                        location: BlobLocation::Solid {
                            run: runs.len() - 1,
                            offset: spec.offset,
                        },
                    },
                );
                continue;
            }
            check_plain(&source, path, &spec)?;
            let blob = Blob {
                hash: entry.hash,
                size: spec.size,
                location: BlobLocation::Plain(spec),
            };
            if flags & resource_flags::METADATA != 0 {
                images.push(blob);
                continue;
            }
            if entry.hash == ZERO_HASH || blobs.contains_key(&entry.hash) {
                continue;
            }
            blobs.insert(entry.hash, blob);
        }
        if images.len() != header.image_count as usize {
            return Err(invalid(format!(
                "the header declares {} images but the blob table holds {} metadata resources",
                header.image_count,
                images.len()
            )));
        }

        // XML data.
        let xml_spec = ResourceSpec::from_header(&header.xml_data);
        let xml_bytes = source
            .read_resource(&xml_spec, MAX_XML.min(len))
            .map_err(|e| resource_error(path, "the XML data", e))?;
        let info = xml::parse(&xml_bytes).map_err(|source| WimError::Xml {
            path: path.to_path_buf(),
            source,
        })?;
        let indexes: Vec<u32> = info.images.iter().map(|i| i.index).collect();
        let expected: Vec<u32> = (1..=header.image_count).collect();
        if indexes != expected {
            return Err(invalid(format!(
                "the XML data describes images {indexes:?}, the header declares {}",
                header.image_count
            )));
        }

        let integrity_spec = ResourceSpec::from_header(&header.integrity_table);
        let integrity = if integrity_spec.is_empty_spec() {
            None
        } else {
            Some(integrity_spec)
        };
        let header_info = WimHeaderInfo {
            version: header.version,
            flags: header.flags,
            compression,
            chunk_size,
            guid: header.guid,
            part_number: header.part_number,
            total_parts: header.total_parts,
            image_count: header.image_count,
            boot_index: header.boot_index,
            has_integrity_table: integrity.is_some(),
            rp_fix: header.flags & header_flags::RP_FIX != 0,
        };
        Ok(WimFile {
            path: path.to_path_buf(),
            info,
            header: header_info,
            xml_bytes,
            integrity,
            blob_table: table_spec,
            source,
            blobs,
            runs,
            images,
        })
    }

    pub(crate) fn source(&self) -> &Source {
        &self.source
    }

    pub(crate) fn integrity_spec(&self) -> Option<ResourceSpec> {
        self.integrity
    }

    /// The end of the blob table: the integrity table covers the file from
    /// the header up to here.
    pub(crate) fn blob_table_end(&self) -> u64 {
        self.blob_table
            .offset
            .saturating_add(self.blob_table.stored_size)
    }

    pub(crate) fn blob(&self, hash: &Sha1) -> Option<&Blob> {
        self.blobs.get(hash)
    }

    pub(crate) fn all_blobs(&self) -> impl Iterator<Item = &Blob> {
        self.blobs.values()
    }

    /// File offset of the first resource of solid run `run`.
    pub(crate) fn solid_run_offset(&self, run: usize) -> Option<u64> {
        self.runs
            .get(run)
            .and_then(|r| r.resources.first())
            .map(|(spec, _)| spec.offset)
    }

    /// Reads and parses the metadata of image `index` (1-based).
    pub(crate) fn image(&self, index: u32) -> Result<Image, WimError> {
        let blob = index
            .checked_sub(1)
            .and_then(|i| self.images.get(i as usize))
            .ok_or(WimError::NoSuchImage {
                path: self.path.clone(),
                index,
                count: self.header.image_count,
            })?;
        let bytes = self.read_blob(
            blob,
            MAX_METADATA,
            &format!("the metadata of image {index}"),
        )?;
        metadata::parse(&bytes).map_err(|source| WimError::Metadata {
            path: self.path.clone(),
            index,
            source,
        })
    }

    /// The chunks holding `blob` and, for each, the byte range of the blob
    /// within the decoded chunk, in order.
    pub(crate) fn blob_chunks(&self, blob: &Blob) -> Result<Vec<(ChunkRef, u32, u32)>, WimError> {
        let err = |e| resource_error(&self.path, "a resource", e);
        match blob.location {
            BlobLocation::Plain(spec) => {
                let plan = self.source.plan(&spec).map_err(err)?;
                Ok(plan.chunks.iter().map(|c| (*c, 0, c.size)).collect())
            }
            BlobLocation::Solid { run, offset } => {
                let run = self.runs.get(run).ok_or_else(|| WimError::Invalid {
                    path: self.path.clone(),
                    reason: "a solid blob refers to a missing resource".into(),
                })?;
                let end = offset + blob.size;
                let mut out = Vec::new();
                for ((_, plan), &rstart) in run.resources.iter().zip(&run.starts) {
                    let rend = rstart + plan.size;
                    if end <= rstart || offset >= rend {
                        continue;
                    }
                    let lo = offset.max(rstart) - rstart;
                    let hi = end.min(rend) - rstart;
                    let (chunks, mut skip) = plan.covering(lo, hi);
                    let mut remaining = hi - lo;
                    for c in chunks {
                        let take = (u64::from(c.size) - skip).min(remaining);
                        out.push((*c, skip as u32, take as u32));
                        remaining -= take;
                        skip = 0;
                    }
                }
                Ok(out)
            }
        }
    }

    /// Checks that `bytes` are blob `blob`: its size and SHA-1. `what` names
    /// the blob's users in errors.
    pub(crate) fn check_blob(
        &self,
        blob: &Blob,
        bytes: &[u8],
        what: &dyn Fn() -> String,
    ) -> Result<(), WimError> {
        let actual: [u8; 20] = Sha1Hasher::digest(bytes).into();
        self.check_digest(blob, bytes.len() as u64, actual, what)
    }

    /// Checks that the bytes hashed into `hash` are blob `blob` (see
    /// [`Self::check_digest`]).
    pub(crate) fn check_hash(
        &self,
        blob: &Blob,
        hash: BlobHash,
        what: &dyn Fn() -> String,
    ) -> Result<(), WimError> {
        let got = hash.len();
        self.check_digest(blob, got, hash.finalize(), what)
    }

    /// Checks that `got` bytes with SHA-1 `actual` are blob `blob`: an error
    /// naming the blob's users (`what`) and what was found instead if not.
    pub(crate) fn check_digest(
        &self,
        blob: &Blob,
        got: u64,
        actual: [u8; 20],
        what: &dyn Fn() -> String,
    ) -> Result<(), WimError> {
        if got == blob.size && actual == blob.hash {
            return Ok(());
        }
        Err(WimError::HashMismatch {
            path: self.path.clone(),
            files: what(),
            expected: hex::encode(blob.hash),
            actual: if got != blob.size {
                format!("{got} bytes instead of {}", blob.size)
            } else {
                hex::encode(actual)
            },
        })
    }

    /// Hands the bytes of `blob` to `sink` in order, in batches decoded on
    /// all cores, not checked against its size and SHA-1. `what` names the
    /// blob's users in errors.
    fn stream_blob_unchecked(
        &self,
        blob: &Blob,
        what: &dyn Fn() -> String,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), WimError>,
    ) -> Result<(), WimError> {
        let pieces = self.blob_chunks(blob)?;
        let mut i = 0;
        let mut decoded = Vec::new();
        while i < pieces.len() {
            let mut j = i;
            let mut bytes = 0u64;
            while j < pieces.len() && (j == i || bytes < BATCH_BYTES) {
                bytes += u64::from(pieces[j].0.size);
                j += 1;
            }
            let chunks: Vec<ChunkRef> = pieces[i..j].iter().map(|p| p.0).collect();
            let ends = self
                .source
                .decode_into(&chunks, &mut decoded)
                .map_err(|e| resource_error(&self.path, &format!("the data of {}", what()), e))?;
            let mut start = 0;
            for (end, (_, skip, take)) in ends.into_iter().zip(&pieces[i..j]) {
                let data = decoded.get(start..end).unwrap_or(&[]);
                start = end;
                let part = data
                    .get(*skip as usize..(*skip + *take) as usize)
                    .unwrap_or(&[]);
                sink(part)?;
            }
            i = j;
        }
        Ok(())
    }

    /// Reads a whole blob into memory (at most `limit` bytes), checked
    /// against its size and SHA-1.
    fn read_blob(&self, blob: &Blob, limit: u64, what: &str) -> Result<Vec<u8>, WimError> {
        if blob.size > limit {
            return Err(WimError::Invalid {
                path: self.path.clone(),
                reason: format!(
                    "{what} declares {} bytes, more than the {limit} accepted",
                    blob.size
                ),
            });
        }
        if blob.size > self.source.len().saturating_mul(1 << 16) {
            return Err(WimError::Invalid {
                path: self.path.clone(),
                reason: format!(
                    "{what} declares {} bytes, more than a file of {} bytes can hold",
                    blob.size,
                    self.source.len()
                ),
            });
        }
        let mut out = Vec::new();
        self.stream_blob_unchecked(blob, &|| what.to_string(), &mut |part| {
            out.extend_from_slice(part);
            Ok(())
        })?;
        self.check_blob(blob, &out, &|| what.to_string())?;
        Ok(out)
    }
}

impl ResourceSpec {
    fn is_empty_spec(&self) -> bool {
        self.offset == 0 && self.stored_size == 0 && self.size == 0
    }
}

fn check_plain(source: &Source, path: &Path, spec: &ResourceSpec) -> Result<(), WimError> {
    match spec.offset.checked_add(spec.stored_size) {
        Some(end) if end <= source.len() => Ok(()),
        _ => Err(WimError::Invalid {
            path: path.to_path_buf(),
            reason: format!(
                "a resource of {} bytes at offset {} lies past the end of the file ({} bytes)",
                spec.stored_size,
                spec.offset,
                source.len()
            ),
        }),
    }
}

pub(crate) fn resource_error(path: &Path, what: &str, source: ResourceError) -> WimError {
    WimError::Resource {
        path: path.to_path_buf(),
        what: what.to_string(),
        source,
    }
}
