//! `Save-ContainerImage` and `Save-Package`: verified, resumable downloads
//! into a folder (which becomes an offline feed) or to one file.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use containerimage_provider::download::{self, Downloader, Obtained, Outcome, Request};
use containerimage_provider::feed::{self, FeedEntry, FeedRecord, FeedSignature, FEED_FILE_NAME};
use containerimage_provider::location::Location;
use containerimage_provider::progress::{downloaded_line, Reporter};
use containerimage_provider::query;
use containerimage_provider::signing::SigningKey;
use containerimage_provider::source::FeedClient;
use containerimage_provider::version::Version;
use containerimage_provider::wildcard;
use serde::Serialize;

use crate::cmdlet::{command_of, parse, property, CmdError, CmdResult, CmdletDef, Ctx};
use crate::find::{
    build_query, check_provider_name, chosen_sources, report_unverified, VersionArgs,
};

/// Where to save: exactly one of these.
#[derive(clap::Args, Debug, Clone)]
#[group(id = "target", required = true, multiple = false)]
pub struct SaveTarget {
    /// The folder to save into (wildcards allowed; must resolve to one folder).
    #[arg(long)]
    pub path: Option<String>,
    /// The folder to save into, taken literally.
    #[arg(long)]
    pub literal_path: Option<String>,
    /// Exactly this file (the older syntax: -Destination c:\images\NanoServer.wim).
    #[arg(long)]
    pub destination: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    /// Image names; wildcards allowed. Omit to read Find-ContainerImage objects from standard input.
    #[arg(long)]
    pub name: Vec<String>,
    #[command(flatten)]
    pub target: SaveTarget,
    #[command(flatten)]
    pub versions: VersionArgs,
    /// Only these registered sources.
    #[arg(long)]
    pub source: Vec<String>,
    /// Download again even when a verified file is there; create a missing folder.
    #[arg(long)]
    pub force: bool,
    /// Show what would be saved, change nothing.
    #[arg(long)]
    pub what_if: bool,
    /// An HTTP proxy URL (overrides HTTPS_PROXY/HTTP_PROXY).
    #[arg(long)]
    pub proxy: Option<String>,
    /// With -Path: a minisign secret key file to sign the folder's updated feed.xml with (feed.xml.minisig). An encrypted key's password is asked on the terminal, or read from CONTAINERIMAGE_SIGNING_KEY_PASSWORD.
    #[arg(long)]
    pub signing_key: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct SavePackageArgs {
    #[command(flatten)]
    pub save: SaveArgs,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Save-ContainerImage",
        synopsis: "Downloads images to a folder (an offline feed) or a file, verifying size and SHA-256.",
        description: "Downloads resume after interruptions, are retried, and fall back to the next mirror. \
                      With -Path the folder's feed.xml is written or updated so the folder can be registered as a source. \
                      -SigningKey <minisign secret key file> signs the updated feed.xml (feed.xml.minisig); without it, \
                      a folder whose feed was signed is warned about, since its signature no longer matches. \
                      The password of an encrypted key is asked on the terminal; scripts set it in the \
                      environment variable CONTAINERIMAGE_SIGNING_KEY_PASSWORD instead.",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: true,
        examples: &[
            ("containerimage Save-ContainerImage -Name NanoServer -Path /srv/images", "Saves the newest Nano Server."),
            (
                "containerimage Save-ContainerImage -Name NanoServer -Destination /tmp/NanoServer.wim",
                "Saves to exactly that file.",
            ),
            (
                "containerimage Find-ContainerImage '*nano*' | containerimage Save-ContainerImage -Path /srv/images",
                "Saves what Find found.",
            ),
            (
                "containerimage Save-ContainerImage NanoServer -Path /srv/images -SigningKey ~/.minisign/minisign.key",
                "Saves Nano Server and signs the folder's updated feed.xml.",
            ),
        ],
        command: command_of::<SaveArgs>,
        run: |ctx, m| save(ctx, parse(m)?),
    },
    CmdletDef {
        name: "Save-Package",
        synopsis: "Save-ContainerImage under OneGet's generic name (-ProviderName ContainerImage).",
        description: "",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: true,
        examples: &[(
            "containerimage Save-Package -ProviderName ContainerImage -Name NanoServer -Path /srv/images",
            "Saves Nano Server.",
        )],
        command: command_of::<SavePackageArgs>,
        run: |ctx, m| save_package(ctx, parse(m)?),
    },
];

/// What Save writes for every image saved.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct SavedImage {
    name: String,
    version: String,
    source: String,
    full_path: String,
}

const COLUMNS: &[&str] = &["Name", "Version", "Source", "FullPath"];

/// Where the images go.
enum Target {
    /// A folder: `<Name>-<version>.wim` inside, and its `feed.xml` updated.
    Folder(PathBuf),
    /// Exactly this file.
    File(PathBuf),
}

fn save_package(ctx: &mut Ctx, args: SavePackageArgs) -> CmdResult {
    check_provider_name(args.provider_name.as_deref())?;
    save(ctx, args.save)
}

fn save(ctx: &mut Ctx, args: SaveArgs) -> CmdResult {
    if args.signing_key.is_some() && args.target.destination.is_some() {
        return Err(CmdError::usage(
            "-SigningKey signs the feed.xml of the folder that -Path or -LiteralPath names; -Destination writes one file and no feed",
        ));
    }
    let entries = if args.name.is_empty() {
        entries_from_pipeline(ctx)?
    } else {
        find_entries(ctx, &args)?
    };
    if entries.is_empty() {
        return Ok(());
    }
    let target = resolve_target(&args.target, args.force, args.what_if)?;
    if let Target::File(file) = &target {
        if entries.len() > 1 {
            let names: Vec<String> = entries
                .iter()
                .map(|e| format!("{} {} from '{}'", e.name, e.version, e.source))
                .collect();
            return Err(CmdError::usage(format!(
                "-Destination names one file ({}), but {} images were selected: {}. Use -Path to save several images into a folder",
                file.display(),
                entries.len(),
                names.join(", ")
            )));
        }
    }
    let key = match &args.signing_key {
        Some(k) if !args.what_if => Some(crate::signing::open_signing_key(ctx, k)?),
        _ => None,
    };
    let entries = match &target {
        Target::Folder(_) => once_per_file(ctx, entries),
        Target::File(_) => entries,
    };
    let downloader = Downloader::from_env(args.proxy.as_deref())?;
    let mut stale: Option<(PathBuf, FeedSignature)> = None;
    for entry in &entries {
        let dest = match destination(&target, entry) {
            Ok(d) => d,
            Err(e) => {
                ctx.report(e);
                continue;
            }
        };
        if args.what_if {
            ctx.what_if(
                "Save",
                &format!("{} {} to {}", entry.name, entry.version, dest.display()),
            );
            continue;
        }
        match save_one(
            ctx,
            &downloader,
            entry,
            &dest,
            &target,
            args.force,
            key.as_ref(),
        ) {
            Ok((saved, signature)) => {
                if let (Target::Folder(folder), Some(sig)) = (&target, signature) {
                    let feed_file = folder.join(FEED_FILE_NAME);
                    match sig {
                        FeedSignature::Stale(_) => stale = Some((feed_file, sig)),
                        other => crate::signing::report_feed_signature(ctx, &feed_file, &other, ""),
                    }
                }
                ctx.emit(&saved, COLUMNS)?
            }
            Err(e) => ctx.report(e),
        }
    }
    // Once, after every update of the folder's feed.
    if let Some((feed_file, sig)) = stale {
        crate::signing::report_feed_signature(
            ctx,
            &feed_file,
            &sig,
            "the same Save-ContainerImage command and -SigningKey <secret key file> (what is already saved is not downloaded again)",
        );
    }
    Ok(())
}

/// The same image (name and version) offered by several sources is saved
/// once, from the first source that lists it: both would go to one file.
fn once_per_file(ctx: &Ctx, entries: Vec<FeedEntry>) -> Vec<FeedEntry> {
    let mut kept: Vec<FeedEntry> = Vec::new();
    for entry in entries {
        let first = kept
            .iter()
            .find(|k| k.name.eq_ignore_ascii_case(&entry.name) && k.version == entry.version);
        match first {
            Some(k) => ctx.reporter().verbose(&format!(
                "{} {} is offered by the sources '{}' and '{}'; saving it once, from '{}'",
                entry.name, entry.version, k.source, entry.source, k.source
            )),
            None => kept.push(entry),
        }
    }
    kept
}

fn save_one(
    ctx: &mut Ctx,
    downloader: &Downloader,
    entry: &FeedEntry,
    dest: &Path,
    target: &Target,
    force: bool,
    key: Option<&SigningKey>,
) -> Result<(SavedImage, Option<FeedSignature>), CmdError> {
    let what = format!("cannot save {} {}", entry.name, entry.version);
    let reporter = ctx.reporter();
    reporter.verbose(&format!(
        "Saving {} {} from {} to {}",
        entry.name,
        entry.version,
        entry
            .locations
            .iter()
            .map(Location::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        dest.display()
    ));
    let outcome = download::fetch(downloader, &Request::from(entry), dest, force, reporter)
        .map_err(|e| CmdError::from(e).context(what.clone()))?;
    match &outcome.obtained {
        Obtained::AlreadyPresent => reporter.line(&format!(
            "{} {} is already saved at {} (SHA-256 verified); use -Force to download it again.",
            entry.name,
            entry.version,
            dest.display()
        )),
        Obtained::Downloaded(_) => reporter.line(&downloaded_line(outcome.elapsed)),
    }
    let signature = match target {
        Target::Folder(folder) => {
            Some(record_in_feed(folder, entry, dest, &outcome, key).map_err(|e| e.context(what))?)
        }
        Target::File(_) => None,
    };
    let saved = SavedImage {
        name: entry.name.clone(),
        version: entry.version.to_string(),
        source: entry.source.clone(),
        full_path: dest.display().to_string(),
    };
    Ok((saved, signature))
}

/// Adds or updates the saved image in the folder's `feed.xml`, with the
/// file name as a relative location, so the folder works as a source as it is.
fn record_in_feed(
    folder: &Path,
    entry: &FeedEntry,
    dest: &Path,
    outcome: &Outcome,
    key: Option<&SigningKey>,
) -> Result<FeedSignature, CmdError> {
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let record = FeedRecord::for_saved_file(entry, &file_name, outcome.size, outcome.sha256);
    feed::upsert_entry(folder, record, key).map_err(|e| {
        CmdError::from(e).context(format!(
            "saved {}, but cannot update {}",
            dest.display(),
            folder.join(FEED_FILE_NAME).display()
        ))
    })
}

/// `<Name>-<version as written, dots as dashes>.wim` inside the folder, or the file.
fn destination(target: &Target, entry: &FeedEntry) -> Result<PathBuf, CmdError> {
    match target {
        Target::File(f) => Ok(f.clone()),
        Target::Folder(dir) => Ok(dir.join(file_name(&entry.name, &entry.version)?)),
    }
}

fn file_name(name: &str, version: &Version) -> Result<String, CmdError> {
    let unsafe_name = name.is_empty()
        || name.contains(['/', '\\', '\0', ':'])
        || name.chars().any(char::is_control);
    if unsafe_name {
        return Err(CmdError::failed(format!(
            "the image name {name:?} cannot be used in a file name"
        ))
        .hint("use -Destination to choose the file name"));
    }
    Ok(format!("{name}-{}.wim", version.dashed()))
}

/// Checks -Path / -LiteralPath / -Destination and returns an absolute target.
fn resolve_target(t: &SaveTarget, force: bool, what_if: bool) -> Result<Target, CmdError> {
    if let Some(file) = &t.destination {
        let file = absolute(Path::new(file))?;
        if file.is_dir() {
            return Err(CmdError::failed(format!(
                "-Destination {} is a folder; it must name the .wim file to write",
                file.display()
            ))
            .hint("use -Path to save into a folder"));
        }
        if let Some(parent) = file.parent() {
            ensure_folder(parent, force, what_if)?;
        }
        return Ok(Target::File(file));
    }
    let folder = match (&t.path, &t.literal_path) {
        (Some(p), _) if wildcard::has_wildcards(p) => resolve_wildcard_folder(p)?,
        (Some(p), _) | (None, Some(p)) => absolute(Path::new(p))?,
        (None, None) => {
            return Err(CmdError::usage(
                "one of -Path, -LiteralPath or -Destination is required",
            ))
        }
    };
    ensure_folder(&folder, force, what_if)?;
    Ok(Target::Folder(folder))
}

fn absolute(p: &Path) -> Result<PathBuf, CmdError> {
    std::path::absolute(p)
        .map_err(|e| CmdError::from(e).context(format!("cannot resolve the path {}", p.display())))
}

/// A missing folder is an error unless `-Force`, which creates it.
fn ensure_folder(dir: &Path, force: bool, what_if: bool) -> Result<(), CmdError> {
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        return Err(CmdError::failed(format!(
            "{} exists and is not a folder",
            dir.display()
        )));
    }
    if !force {
        return Err(CmdError::failed(format!(
            "Cannot find path '{}' because it does not exist.",
            dir.display()
        ))
        .hint("create the folder first, or add -Force to create it"));
    }
    if what_if {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| CmdError::from(e).context(format!("cannot create {}", dir.display())))
}

/// Expands `*` and `?` in a `-Path`; it must name exactly one existing folder.
fn resolve_wildcard_folder(pattern: &str) -> Result<PathBuf, CmdError> {
    let pattern_path = absolute(Path::new(pattern))?;
    let mut candidates = vec![PathBuf::new()];
    for component in pattern_path.components() {
        let text = component.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for base in &candidates {
            if !wildcard::has_wildcards(&text) {
                next.push(base.join(component.as_os_str()));
                continue;
            }
            let Ok(listing) = std::fs::read_dir(base) else {
                continue;
            };
            let mut names: Vec<PathBuf> = listing
                .filter_map(Result::ok)
                .filter(|e| wildcard::matches(&text, &e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect();
            names.sort();
            next.extend(names);
        }
        candidates = next;
    }
    candidates.retain(|c| c.is_dir());
    match candidates.len() {
        1 => Ok(candidates.remove(0)),
        0 => Err(CmdError::failed(format!(
            "Cannot find path '{pattern}' because it does not exist."
        ))
        .hint("-Path with wildcards must match one existing folder; use -LiteralPath for a name containing * or ?")),
        _ => Err(CmdError::failed(format!(
            "-Path '{pattern}' matches {} folders: {}; it must match exactly one",
            candidates.len(),
            candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Resolves -Name and the version parameters against the registered sources,
/// as Find-ContainerImage does (the highest matching version of each name).
fn find_entries(ctx: &mut Ctx, args: &SaveArgs) -> Result<Vec<FeedEntry>, CmdError> {
    let query = build_query(&args.name, &args.versions, false)?;
    let home = ctx.home()?;
    let config = home.load()?;
    let sources = chosen_sources(&config, &args.source)?;
    let mut result = query::find(&sources, &query, &FeedClient::default(), ctx.reporter());
    report_unverified(ctx, std::mem::take(&mut result.unverified_sources));
    for message in result.no_match_messages() {
        ctx.report(CmdError::failed(message));
    }
    Ok(result.entries)
}

/// The Find-ContainerImage objects on standard input, as feed entries.
fn entries_from_pipeline(ctx: &mut Ctx) -> Result<Vec<FeedEntry>, CmdError> {
    if std::io::stdin().is_terminal() {
        return Err(CmdError::usage(
            "give -Name, or pipe Find-ContainerImage objects into Save-ContainerImage",
        ));
    }
    // An empty pipe (a Find that found nothing) saves nothing and succeeds.
    let objects = ctx.pipeline_input()?;
    let mut entries = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        match entry_from_object(object) {
            Ok(e) => entries.push(e),
            Err(problem) => ctx.report(CmdError::failed(format!(
                "object {} on standard input cannot be saved: {problem}",
                i + 1
            ))),
        }
    }
    Ok(entries)
}

/// Reads Name, Version, Source, Location (or Locations, an array of mirrors),
/// Sha256, Size and the descriptive fields of a Find object.
fn entry_from_object(o: &serde_json::Value) -> Result<FeedEntry, String> {
    let name = property(o, "Name").ok_or("it has no Name")?.to_string();
    // The one name rule: the name becomes a file name and a feed entry that
    // must read back as it was written.
    containerimage_provider::names::check_name(&name).map_err(|e| e.to_string())?;
    let version: Version = property(o, "Version")
        .ok_or("it has no Version")?
        .parse()
        .map_err(|e: containerimage_provider::version::VersionError| e.to_string())?;
    let mirrors = o.get("Locations").filter(|v| v.is_array());
    let texts: Vec<&str> = match mirrors.or(o.get("Location")) {
        Some(serde_json::Value::String(s)) => vec![s.as_str()],
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    if texts.is_empty() {
        return Err(format!("{name} {version} has no Location"));
    }
    let locations = texts
        .iter()
        .map(|t| Location::parse(t).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let sha256 = match property(o, "Sha256").filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut hash)
                .map_err(|_| format!("Sha256 '{text}' is not 64 hexadecimal digits"))?;
            Some(hash)
        }
    };
    let size = match o.get("Size") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or("Size is not a number of bytes")?),
    };
    let text = |k: &str| property(o, k).filter(|s| !s.is_empty()).map(str::to_string);
    Ok(FeedEntry {
        source: text("Source").unwrap_or_default(),
        publisher: text("Publisher"),
        description: text("Description"),
        architecture: text("Architecture"),
        name,
        version,
        size,
        sha256,
        locations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_file_names_use_dashed_versions_and_refuse_separators() {
        let v: Version = "10.0.14300.1010".parse().expect("version");
        assert_eq!(
            file_name("NanoServer", &v).expect("name"),
            "NanoServer-10-0-14300-1010.wim"
        );
        assert!(file_name("../evil", &v).is_err());
        assert!(file_name("a\\b", &v).is_err());
    }

    #[test]
    fn pipeline_objects_become_entries() {
        let o = serde_json::json!({
            "Name": "NanoServer", "Version": "10.0.14300.1010", "Source": "Local",
            "Location": ["http://a.test/n.wim", "http://b.test/n.wim"],
            "Sha256": "00".repeat(32), "Size": 42
        });
        let e = entry_from_object(&o).expect("entry");
        assert_eq!(e.locations.len(), 2);
        assert_eq!(e.size, Some(42));
        assert_eq!(e.sha256, Some([0u8; 32]));
        assert_eq!(e.source, "Local");

        let bad = serde_json::json!({"Name": "x", "Version": "1.0", "Location": "http://a/x", "Sha256": "zz"});
        assert!(entry_from_object(&bad)
            .expect_err("bad hash")
            .contains("Sha256"));
    }
}
