//! Request-ContainerImage (`docker pull`): a manifest (or an index / manifest
//! list, with the Windows entry chosen by `os.version`), its config and its
//! missing layers, each verified, into a temporary OCI layout in the store's
//! staging area, then installed by Import.
//!
//! Layer blobs are downloaded into `<store>/.cache/registry-blobs/` first
//! (a `.partial` file there resumes across runs), then moved into the
//! layout. An image whose config is in the store already (Id = config
//! digest) downloads no layers: Import only adds the tag.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::Method;

use super::client::{blob_cache, read_limited, status_error, Body, Client};
use super::reference::Reference;
use super::{io_err, RegistryError, MANIFEST_ACCEPT, MAX_DOCUMENT};
use crate::fsutil::dir::Dir;
use crate::oci::spec::{self, Compression, Descriptor, ImageConfig, Index, LayoutFile, Manifest};
use crate::progress::Reporter;
use crate::store::{ImageRecord, StoreLock};
use crate::version::Version;

/// Which image of an index to take.
#[derive(Clone, Debug)]
pub struct PlatformChoice {
    /// `os.version` wanted: four parts for that exact version, three (or
    /// fewer) for the newest revision of that build. `None`: the newest
    /// `os.version` of the architecture.
    pub os_version: Option<String>,
    /// OCI architecture (`amd64`, `arm64`).
    pub architecture: String,
}

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    pub images: Vec<ImageRecord>,
    /// The digest the reference names: the index, or the manifest itself.
    pub digest: String,
    /// Layer bytes downloaded (0 when the image was in the store).
    pub downloaded: u64,
    pub elapsed: Duration,
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> RegistryError {
    RegistryError::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

/// A manifest or index fetched by tag or digest, verified against the
/// digest when one is known.
struct Document {
    media_type: String,
    bytes: Vec<u8>,
    digest: String,
}

fn fetch_manifest(
    client: &Client,
    repository: &str,
    reference: &str,
    expected: Option<&Descriptor>,
    reporter: &dyn Reporter,
) -> Result<Document, RegistryError> {
    let url = client.url(&format!("{repository}/manifests/{reference}"))?;
    let scopes = [format!("repository:{repository}:pull")];
    let response = client.send(
        Method::GET,
        &url,
        &[("Accept", MANIFEST_ACCEPT.to_string())],
        &Body::Empty,
        &scopes,
        None,
        reporter,
    )?;
    if !response.status().is_success() {
        return Err(status_error(
            &format!("the manifest {repository}:{reference}"),
            &url,
            response,
        ));
    }
    let header_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_string());
    let header_digest = response
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let limit = expected.map_or(MAX_DOCUMENT, |d| d.size.min(MAX_DOCUMENT));
    let bytes = read_limited(response, limit, &url)?;
    let digest = crate::oci::digest_of(&bytes);
    let what = format!("the manifest {repository}:{reference}");
    // What the bytes must hash to: the descriptor's digest, the digest asked
    // for, or what the registry says (when it says a sha256 digest).
    let wanted = expected
        .map(|d| d.digest.clone())
        .or_else(|| spec::sha256_hex(reference).map(|_| reference.to_string()))
        .or_else(|| header_digest.filter(|d| spec::sha256_hex(d).is_some()));
    if let Some(w) = wanted {
        if w != digest {
            return Err(invalid(
                what,
                format!("its content has the digest {digest}, not {w}"),
            ));
        }
    }
    if let Some(d) = expected {
        if d.size != bytes.len() as u64 {
            return Err(invalid(
                what,
                format!("{} bytes where the index says {}", bytes.len(), d.size),
            ));
        }
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default, rename = "mediaType")]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe =
        serde_json::from_slice(&bytes).map_err(|e| invalid(what.clone(), e.to_string()))?;
    let media_type = probe
        .media_type
        .or(header_type)
        .or_else(|| {
            probe
                .manifests
                .is_some()
                .then(|| spec::MEDIA_OCI_INDEX.to_string())
        })
        .unwrap_or_else(|| spec::MEDIA_OCI_MANIFEST.to_string());
    Ok(Document {
        media_type,
        bytes,
        digest,
    })
}

/// Picks the entry of an index for `choice` (see [`PlatformChoice`]).
pub fn choose(index: &Index, choice: &PlatformChoice) -> Result<Descriptor, String> {
    let wanted: Option<(Version, usize)> = match &choice.os_version {
        Some(v) => {
            let parsed: Version = v
                .parse()
                .map_err(|_| format!("-OsVersion '{v}' is not a Windows version"))?;
            Some((parsed, v.split('.').count()))
        }
        None => None,
    };
    let mut best: Option<(Version, &Descriptor)> = None;
    for d in &index.manifests {
        let Some(p) = &d.platform else { continue };
        if p.os != "windows" || p.architecture != choice.architecture {
            continue;
        }
        let version: Version = p
            .os_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| Version::from_parts([0, 0, 0, 0]));
        if let Some((w, parts)) = &wanted {
            let n = (*parts).clamp(1, 4);
            if version.parts()[..n] != w.parts()[..n] {
                continue;
            }
        }
        if best.as_ref().is_none_or(|(b, _)| version > *b) {
            best = Some((version, d));
        }
    }
    if let Some((_, d)) = best {
        return Ok(d.clone());
    }
    let offered: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| match &p.os_version {
            Some(v) => format!("{}/{} {v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    Err(format!(
        "no entry for windows/{}{}; it offers: {}",
        choice.architecture,
        choice
            .os_version
            .as_ref()
            .map(|v| format!(" with os.version {v}"))
            .unwrap_or_default(),
        if offered.is_empty() {
            "nothing with a platform".to_string()
        } else {
            offered.join(", ")
        }
    ))
}

/// Downloads a document blob (a config) whole, verified.
fn fetch_small_blob(
    client: &Client,
    repository: &str,
    d: &Descriptor,
    reporter: &dyn Reporter,
) -> Result<Vec<u8>, RegistryError> {
    if d.size > MAX_DOCUMENT {
        return Err(invalid(
            format!("the config {}", d.digest),
            format!("{} bytes, more than a config may have", d.size),
        ));
    }
    let url = client.url(&format!("{repository}/blobs/{}", d.digest))?;
    let scopes = [format!("repository:{repository}:pull")];
    let response = client.send(
        Method::GET,
        &url,
        &[],
        &Body::Empty,
        &scopes,
        None,
        reporter,
    )?;
    if !response.status().is_success() {
        return Err(status_error(
            &format!("the blob {}", d.digest),
            &url,
            response,
        ));
    }
    let bytes = read_limited(response, d.size, &url)?;
    let digest = crate::oci::digest_of(&bytes);
    if bytes.len() as u64 != d.size || digest != d.digest {
        return Err(invalid(
            format!("the blob {}", d.digest),
            format!(
                "the registry sent {} bytes with the digest {digest}; the manifest says {} bytes, {}",
                bytes.len(),
                d.size,
                d.digest
            ),
        ));
    }
    Ok(bytes)
}

/// Pulls `reference` into the store held by `lock`.
pub fn pull(
    lock: &mut StoreLock<'_>,
    client: &Client,
    reference: &Reference,
    choice: &PlatformChoice,
    force: bool,
    reporter: &dyn Reporter,
) -> Result<Pulled, RegistryError> {
    let started = Instant::now();
    let repository = &reference.repository;
    let mut doc = fetch_manifest(
        client,
        repository,
        reference.manifest_reference(),
        None,
        reporter,
    )?;
    // What the reference names (an index, or the manifest itself), as
    // docker reports it after a pull.
    let named_digest = doc.digest.clone();
    if matches!(
        doc.media_type.as_str(),
        spec::MEDIA_OCI_INDEX | spec::MEDIA_DOCKER_LIST
    ) {
        let index: Index = serde_json::from_slice(&doc.bytes)
            .map_err(|e| invalid(format!("the index of {reference}"), e.to_string()))?;
        let entry = choose(&index, choice)
            .map_err(|reason| invalid(format!("the index of {reference}"), reason))?;
        reporter.verbose(&format!(
            "{reference}: chose {} (os.version {})",
            entry.digest,
            entry
                .platform
                .as_ref()
                .and_then(|p| p.os_version.clone())
                .unwrap_or_default()
        ));
        doc = fetch_manifest(client, repository, &entry.digest, Some(&entry), reporter)?;
    }
    if !matches!(
        doc.media_type.as_str(),
        spec::MEDIA_OCI_MANIFEST | spec::MEDIA_DOCKER_MANIFEST
    ) {
        return Err(invalid(
            format!("the manifest of {reference}"),
            format!(
                "its media type '{}' is not an image manifest or index this tool reads",
                doc.media_type
            ),
        ));
    }
    let manifest: Manifest = serde_json::from_slice(&doc.bytes)
        .map_err(|e| invalid(format!("the manifest of {reference}"), e.to_string()))?;
    let config_bytes = fetch_small_blob(client, repository, &manifest.config, reporter)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| invalid(format!("the config of {reference}"), e.to_string()))?;
    if config.os != "windows" {
        return Err(invalid(
            format!("the image {reference}"),
            format!("its os is '{}', not windows", config.os),
        ));
    }
    for layer in &manifest.layers {
        if Compression::of_layer_media_type(&layer.media_type).is_none() {
            return Err(invalid(
                format!("the layer {}", layer.digest),
                format!(
                    "the media type '{}' is not a layer this tool reads (foreign layers are not downloaded)",
                    layer.media_type
                ),
            ));
        }
        if spec::sha256_hex(&layer.digest).is_none() {
            return Err(invalid(
                "a layer",
                format!("'{}' is not a sha256 digest", layer.digest),
            ));
        }
    }
    let config_hex = spec::sha256_hex(&manifest.config.digest)
        .ok_or_else(|| {
            invalid(
                "the config",
                format!("'{}' is not a sha256 digest", manifest.config.digest),
            )
        })?
        .to_string();
    let present = lock.images().iter().any(|r| r.id == config_hex);

    // The layout Import reads.
    let store_root = lock.store().root().to_path_buf();
    let staging_root = store_root.join(".staging");
    std::fs::create_dir_all(&staging_root).map_err(io_err(&staging_root))?;
    let staged = tempfile::Builder::new()
        .prefix("pull-")
        .tempdir_in(&staging_root)
        .map_err(io_err(&staging_root))?;
    let layout = Dir::open(staged.path()).map_err(io_err(staged.path()))?;
    let blobs = layout
        .create_dir_all(Path::new("blobs/sha256"))
        .map_err(io_err(&staged.path().join("blobs/sha256")))?;
    let put = |bytes: &[u8]| {
        crate::oci::put_blob(&blobs, bytes).map_err(io_err(&staged.path().join("blobs/sha256")))
    };
    put(&doc.bytes)?;
    put(&config_bytes)?;

    let mut downloaded = 0;
    let mut verified = std::collections::BTreeSet::new();
    if present && !force {
        reporter.verbose(&format!(
            "the image {config_hex} is in the store already; no layer is downloaded"
        ));
    } else {
        // Layers the store has (the same diff_ids on the same parents) are
        // not downloaded: Import reuses them.
        let mut parent: Option<String> = None;
        let mut have = 0;
        for diff_id in &config.rootfs.diff_ids {
            match lock.find_layer(diff_id, parent.as_deref()) {
                Some(r) if !force => {
                    parent = Some(r.full_name.clone());
                    have += 1;
                }
                _ => break,
            }
        }
        if have > 0 {
            reporter.verbose(&format!(
                "{have} of {} layers are in the store already",
                manifest.layers.len()
            ));
        }
        let cache = blob_cache(&store_root);
        std::fs::create_dir_all(&cache).map_err(io_err(&cache))?;
        for (i, layer) in manifest.layers.iter().enumerate().skip(have) {
            let hex = spec::sha256_hex(&layer.digest).unwrap_or_default();
            let dest = cache.join(hex);
            let short = hex.get(..12).unwrap_or(hex);
            let label = format!("layer {}/{} {short}", i + 1, manifest.layers.len());
            let outcome = client.download_blob(
                repository,
                &layer.digest,
                layer.size,
                &label,
                &dest,
                reporter,
            )?;
            downloaded += outcome.size;
            let target = staged.path().join("blobs/sha256").join(hex);
            std::fs::rename(&dest, &target).map_err(io_err(&target))?;
            // Its digest and size were checked as it arrived.
            verified.insert(hex.to_string());
        }
    }

    let mut descriptor = Descriptor {
        media_type: doc.media_type.clone(),
        digest: doc.digest.clone(),
        size: doc.bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
        urls: Vec::new(),
    };
    if let Some(tag) = reference.store_tag() {
        descriptor
            .annotations
            .insert(spec::ANNOTATION_REF_NAME.into(), tag.tag.clone());
        descriptor
            .annotations
            .insert(spec::ANNOTATION_CONTAINERD_NAME.into(), tag.to_string());
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(spec::MEDIA_OCI_INDEX.to_string()),
        manifests: vec![descriptor],
        annotations: BTreeMap::new(),
    };
    layout
        .write_atomic(
            Path::new("oci-layout"),
            &json(&LayoutFile {
                image_layout_version: spec::LAYOUT_VERSION.into(),
            }),
        )
        .map_err(io_err(&staged.path().join("oci-layout")))?;
    layout
        .write_atomic(Path::new("index.json"), &json(&index))
        .map_err(io_err(&staged.path().join("index.json")))?;
    drop(blobs);
    drop(layout);
    let images = crate::import::import_verified(lock, staged.path(), force, verified, reporter)?;
    // The layers' digests, so a push of these images can ask a registry
    // for them before making them again.
    if let Some(top) = images.first() {
        let listing = crate::store::Listing {
            images: lock.images().to_vec(),
            tags: lock.tags().clone(),
        };
        if let Ok(mut chain) = listing.chain(top) {
            chain.reverse();
            if chain.len() == manifest.layers.len() {
                super::push::remember_layers(
                    lock.store(),
                    chain.into_iter().zip(&manifest.layers),
                    reporter,
                );
            }
        }
    }
    Ok(Pulled {
        images,
        digest: named_digest,
        downloaded,
        elapsed: started.elapsed(),
    })
}

/// A layout document, serialized compactly (these types always serialize).
fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::spec::Platform;

    fn entry(arch: &str, version: &str, n: u8) -> Descriptor {
        Descriptor {
            media_type: spec::MEDIA_OCI_MANIFEST.into(),
            digest: format!("sha256:{}", hex::encode([n; 32])),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "windows".into(),
                os_version: Some(version.into()),
                ..Platform::default()
            }),
            annotations: BTreeMap::new(),
            urls: Vec::new(),
        }
    }

    #[test]
    fn the_windows_entry_is_chosen_by_os_version() {
        let index = Index {
            schema_version: 2,
            media_type: None,
            manifests: vec![
                entry("amd64", "10.0.17763.6054", 1),
                entry("amd64", "10.0.20348.2582", 2),
                entry("amd64", "10.0.20348.2655", 3),
                entry("arm64", "10.0.26100.1", 4),
            ],
            annotations: BTreeMap::new(),
        };
        let pick = |v: Option<&str>, arch: &str| {
            choose(
                &index,
                &PlatformChoice {
                    os_version: v.map(str::to_string),
                    architecture: arch.into(),
                },
            )
            .map(|d| d.digest)
        };
        let digest = |n: u8| format!("sha256:{}", hex::encode([n; 32]));
        assert_eq!(pick(None, "amd64"), Ok(digest(3)), "the newest amd64 entry");
        assert_eq!(pick(Some("10.0.17763"), "amd64"), Ok(digest(1)));
        assert_eq!(pick(Some("10.0.20348.2582"), "amd64"), Ok(digest(2)));
        assert_eq!(pick(None, "arm64"), Ok(digest(4)));
        let e = pick(Some("10.0.14393"), "amd64").expect_err("no such build");
        assert!(e.contains("windows/amd64 10.0.20348.2655"), "{e}");
    }
}
