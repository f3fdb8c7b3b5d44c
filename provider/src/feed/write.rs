//! Writing `feed.xml`: a whole manifest for a folder, or one entry added to
//! or replaced in an existing one. Files are replaced atomically; with a
//! signing key, `feed.xml.minisig` is written for exactly the bytes written.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use quick_xml::escape::escape;

use super::{FeedError, FeedRecord, FEED_NAMESPACE};
use crate::fsutil::write_atomic;
use crate::signing::{signature_path, SigningKey};

/// The manifest file a feed folder holds.
pub const FEED_FILE_NAME: &str = "feed.xml";
/// The lock file earlier versions left in every feed folder; removed when
/// found empty, as the folder itself is now what is locked.
const OLD_LOCK_FILE_NAME: &str = ".feed.xml.lock";

/// The manifest for `records`, in the order given.
pub fn render_xml(records: &[FeedRecord]) -> String {
    let mut out = String::with_capacity(128 + records.len() * 512);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let _ = writeln!(out, "<ContainerImageFeed xmlns=\"{FEED_NAMESPACE}\">");
    for r in records {
        out.push_str("  <Image>\n");
        element(&mut out, "Name", &r.name);
        element(&mut out, "Version", r.version.as_written());
        for (tag, value) in [
            ("Publisher", &r.publisher),
            ("Description", &r.description),
            ("Architecture", &r.architecture),
        ] {
            if let Some(v) = value {
                element(&mut out, tag, v);
            }
        }
        if let Some(size) = r.size {
            element(&mut out, "Size", &size.to_string());
        }
        if let Some(sha) = r.sha256 {
            element(&mut out, "Sha256", &hex::encode(sha));
        }
        for l in &r.locations {
            element(&mut out, "Location", l);
        }
        out.push_str("  </Image>\n");
    }
    out.push_str("</ContainerImageFeed>\n");
    out
}

fn element(out: &mut String, tag: &str, text: &str) {
    let _ = writeln!(out, "    <{tag}>{}</{tag}>", escape(text));
}

/// What became of the feed's signature when the feed was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedSignature {
    /// Signed with the key given; the signature file written.
    Signed(PathBuf),
    /// No key was given, and the signature file already there no longer
    /// matches the feed: it must be signed again.
    Stale(PathBuf),
    /// No key was given, and the signature is as good as it was: there is
    /// none, or the feed's bytes did not change.
    Untouched,
}

/// Writes `<folder>/feed.xml` for `records`, replacing any previous one,
/// and signs it when given `key`.
pub fn write_feed_file(
    folder: &Path,
    records: &[FeedRecord],
    key: Option<&SigningKey>,
) -> Result<FeedSignature, FeedError> {
    let path = folder.join(FEED_FILE_NAME);
    let bytes = render_xml(records);
    let unchanged =
        key.is_none() && read_existing(&path).is_ok_and(|old| old.as_slice() == bytes.as_bytes());
    write_atomic(&path, bytes.as_bytes()).map_err(|source| FeedError::Write {
        path: path.clone(),
        source,
    })?;
    let sig = signature_path(&path);
    match key {
        Some(key) => key
            .sign_file(&path, bytes.as_bytes())
            .map(FeedSignature::Signed)
            .map_err(|source| FeedError::Sign { path, source }),
        // A link or anything else at the signature's name counts as a
        // signature left behind: the feed no longer matches it.
        None if !unchanged && std::fs::symlink_metadata(&sig).is_ok() => {
            Ok(FeedSignature::Stale(sig))
        }
        None => Ok(FeedSignature::Untouched),
    }
}

/// Removes the empty `.feed.xml.lock` an earlier version left behind; a
/// link, a folder or a file with content at that name is not ours and stays.
fn remove_old_lock_file(folder: &Path) {
    let path = folder.join(OLD_LOCK_FILE_NAME);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == 0) {
        let _ = std::fs::remove_file(&path);
    }
}

/// The folder's current manifest: a regular file (never a device or FIFO)
/// of at most the feed size limit.
fn read_existing(path: &Path) -> std::io::Result<Vec<u8>> {
    let (file, meta) = crate::location::open_local_file(path)?;
    let limit = crate::source::MAX_FEED_BYTES;
    if meta.len() > limit {
        return Err(std::io::Error::other(format!(
            "it is larger than the {limit}-byte feed limit"
        )));
    }
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Adds `record` to `<folder>/feed.xml`, or replaces the entry with the same
/// name (ignoring case) and version; creates the file when missing. Other
/// entries keep their text, relative locations included. Concurrent callers
/// on one folder are serialised; a damaged existing manifest is an error and
/// is left as it is. With `key` the new manifest is signed (under the same
/// lock, so the signature is of the bytes written).
pub fn upsert_entry(
    folder: &Path,
    record: FeedRecord,
    key: Option<&SigningKey>,
) -> Result<FeedSignature, FeedError> {
    std::fs::create_dir_all(folder).map_err(|source| FeedError::Write {
        path: folder.to_path_buf(),
        source,
    })?;
    // The folder itself is locked (an advisory lock on its handle), so
    // nothing is left in the user's folder for the lock.
    let lock = std::fs::File::open(folder)
        .and_then(|f| f.lock().map(|()| f))
        .map_err(|source| FeedError::Write {
            path: folder.to_path_buf(),
            source,
        })?;
    remove_old_lock_file(folder);

    let path = folder.join(FEED_FILE_NAME);
    let mut records = match read_existing(&path) {
        Ok(bytes) => super::parse_records(&bytes, &path.display().to_string())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(FeedError::Read { path, source }),
    };
    // A JSON index has no sizes or hashes: rewriting it as XML would lose
    // nothing but make an invalid manifest, so it is left alone.
    if let Some(r) = records
        .iter()
        .find(|r| r.size.is_none() || r.sha256.is_none())
    {
        return Err(FeedError::Syntax {
            feed: path.display().to_string(),
            line: r.line,
            message: "this is a JSON index, not an XML manifest; it is left as it is".into(),
        });
    }
    match records
        .iter_mut()
        .find(|r| r.name.eq_ignore_ascii_case(&record.name) && r.version == record.version)
    {
        Some(existing) => *existing = record,
        None => records.push(record),
    }
    let result = write_feed_file(folder, &records, key);
    drop(lock);
    result
}
