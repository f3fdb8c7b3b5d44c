//! Checking a whole WIM: the integrity table, every blob's SHA-1 and every
//! image's metadata (for Test-WindowsImage).

use std::collections::HashMap;
use std::sync::Mutex;

use sha1::{Digest, Sha1 as Sha1Hasher};

use super::blob_hash::BlobHash;
use super::format::{self, IntegrityTableHeader, HEADER_SIZE};
use super::metadata::{Sha1, ZERO_HASH};
use super::stream::{stream_blobs, BlobSink};
use super::{Blob, BlobLocation, WimError, WimFile};
use crate::error_chain;
use crate::progress::Reporter;

/// Largest integrity chunk accepted.
const MAX_INTEGRITY_CHUNK: u32 = 1 << 30;
const READ_PIECE: usize = 1 << 20;

pub(crate) fn check_integrity(wim: &WimFile, reporter: &dyn Reporter) -> Result<bool, WimError> {
    let Some(spec) = wim.integrity_spec() else {
        return Ok(false);
    };
    let path = wim.path().to_path_buf();
    let fail = |reason: String| WimError::Integrity {
        path: path.clone(),
        reason,
    };
    let source = wim.source();
    let table = source
        .read_resource(&spec, source.len())
        .map_err(|e| fail(e.to_string()))?;
    let header: IntegrityTableHeader =
        format::parse(&table).ok_or_else(|| fail("the table is truncated".into()))?;
    let count = header.entry_count as usize;
    let hashes = count
        .checked_mul(20)
        .and_then(|n| table.get(IntegrityTableHeader::SIZE..IntegrityTableHeader::SIZE + n))
        .ok_or_else(|| fail("its entry count does not fit the table".into()))?;
    if header.chunk_size == 0 || header.chunk_size > MAX_INTEGRITY_CHUNK {
        return Err(fail(format!("bad chunk size {}", header.chunk_size)));
    }
    let end = wim.blob_table_end();
    let start = HEADER_SIZE as u64;
    if end < start || end > source.len() {
        return Err(fail("the blob table's end lies outside the file".into()));
    }
    let chunk = u64::from(header.chunk_size);
    let expected_count = (end - start).div_ceil(chunk);
    if expected_count != count as u64 {
        return Err(fail(format!(
            "it has {count} entries, the file needs {expected_count}"
        )));
    }
    reporter.on_start("Checking integrity", Some(end - start));
    let mut buf = vec![0u8; READ_PIECE];
    let mut result = Ok(true);
    for (i, expected) in hashes.chunks_exact(20).enumerate() {
        let cstart = start + i as u64 * chunk;
        let cend = (cstart + chunk).min(end);
        let mut h = Sha1Hasher::new();
        let mut pos = cstart;
        while pos < cend {
            let n = ((cend - pos) as usize).min(READ_PIECE);
            let Some(piece) = buf.get_mut(..n) else { break };
            if let Err(e) = source.read_at(pos, piece) {
                result = Err(fail(e.to_string()));
                break;
            }
            h.update(&*piece);
            pos += n as u64;
            reporter.on_progress(n as u64);
        }
        if result.is_err() {
            break;
        }
        let actual: [u8; 20] = h.finalize().into();
        if actual != expected {
            result = Err(fail(format!(
                "chunk {i} (bytes {cstart}..{cend}) has SHA-1 {}, the table says {}",
                hex::encode(actual),
                hex::encode(expected)
            )));
            break;
        }
    }
    reporter.on_complete();
    result
}

pub(crate) fn verify(wim: &WimFile, reporter: &dyn Reporter) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = check_integrity(wim, reporter) {
        problems.push(error_chain(&e));
    }
    // Who uses each blob, for messages.
    let mut users: HashMap<Sha1, Vec<String>> = HashMap::new();
    for index in 1..=wim.image_count() {
        match wim.image(index) {
            Ok(image) => {
                for (i, e) in image.entries.iter().enumerate() {
                    let path = image.path_of(i);
                    let mut uses = vec![
                        (e.data_hash, path.clone()),
                        (e.reparse_hash(), path.clone()),
                    ];
                    for s in e.named_streams() {
                        uses.push((s.hash, format!("{path}:{}", s.name)));
                    }
                    for (hash, who) in uses {
                        if hash == ZERO_HASH {
                            continue;
                        }
                        if wim.blob(&hash).is_none() {
                            problems.push(format!(
                                "image {index}: the data of '{who}' (SHA-1 {}) is missing",
                                hex::encode(hash)
                            ));
                        }
                        users
                            .entry(hash)
                            .or_default()
                            .push(format!("image {index}: '{who}'"));
                    }
                }
            }
            Err(e) => problems.push(error_chain(&e)),
        }
    }
    let mut blobs: Vec<&Blob> = wim.all_blobs().collect();
    blobs.sort_by_key(|b| match b.location {
        BlobLocation::Plain(spec) => (spec.offset, 0),
        BlobLocation::Solid { run, offset } => {
            (wim.solid_run_offset(run).unwrap_or(u64::MAX), offset)
        }
    });
    let total: u64 = blobs.iter().fold(0u64, |t, b| t.saturating_add(b.size));
    reporter.on_start("Verifying blobs", Some(total));
    let checker = Checker {
        wim,
        blobs: &blobs,
        users: &users,
        reporter,
        problems: Mutex::new(Vec::new()),
    };
    let streamed = stream_blobs(wim, &blobs, &checker);
    reporter.on_complete();
    problems.extend(
        checker
            .problems
            .into_inner()
            .unwrap_or_else(|p| p.into_inner()),
    );
    if let Err(e) = streamed {
        problems.push(error_chain(&e));
    }
    problems
}

/// Hashes blobs and records every mismatch.
struct Checker<'a> {
    wim: &'a WimFile,
    blobs: &'a [&'a Blob],
    users: &'a HashMap<Sha1, Vec<String>>,
    reporter: &'a dyn Reporter,
    problems: Mutex<Vec<String>>,
}

impl BlobSink for Checker<'_> {
    type State = ();

    fn start(&self, _bi: usize) -> Result<Self::State, WimError> {
        Ok(())
    }

    fn write(&self, _bi: usize, _state: &mut Self::State, data: &[u8]) -> Result<(), WimError> {
        self.reporter.on_progress(data.len() as u64);
        Ok(())
    }

    fn finish(&self, bi: usize, _state: Self::State, hash: BlobHash) -> Result<u64, WimError> {
        let Some(blob) = self.blobs.get(bi) else {
            return Ok(0);
        };
        if let Err(e) = self.wim.check_hash(blob, hash, &|| self.describe(bi)) {
            self.problems
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(error_chain(&e));
        }
        Ok(blob.size)
    }

    fn describe(&self, bi: usize) -> String {
        let Some(blob) = self.blobs.get(bi) else {
            return String::new();
        };
        match self.users.get(&blob.hash) {
            Some(list) => {
                let shown: Vec<&str> = list.iter().take(5).map(String::as_str).collect();
                let more = list.len().saturating_sub(5);
                if more > 0 {
                    format!("{} and {more} more", shown.join(", "))
                } else {
                    shown.join(", ")
                }
            }
            None => format!("the unused blob {}", hex::encode(blob.hash)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_joins_causes() {
        let e = WimError::Write {
            path: "x".into(),
            source: std::io::Error::other("disk full"),
        };
        assert_eq!(error_chain(&e), "cannot write x: disk full");
    }
}
