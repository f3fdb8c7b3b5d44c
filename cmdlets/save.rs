//! `Save-ContainerImage` and `Save-Package`: verified, resumable downloads
//! into a folder (which becomes an offline feed) or to one file.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use containerimage_provider::download::{self, Downloader, Obtained, Outcome, Request};
use containerimage_provider::feed::{self, FeedEntry, FeedRecord, FeedSignature, FEED_FILE_NAME};
use containerimage_provider::location::Location;
use containerimage_provider::pipeline::PipedImage;
use containerimage_provider::progress::{downloaded_line, Reporter};
use containerimage_provider::query;
use containerimage_provider::signing::SigningKey;
use containerimage_provider::source::FeedClient;
use containerimage_provider::wildcard;
use serde::Serialize;

use crate::cmdlet::{command_of, parse, CmdError, CmdResult, CmdletDef, Ctx};
use crate::find::{
    build_query, check_provider_name, chosen_sources, report_unverified, ImageChoice,
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
    // The target first: the syntax lines read `[-Name] <String[]> -Path <String> …`.
    #[command(flatten)]
    pub target: SaveTarget,
    #[command(flatten)]
    pub images: ImageChoice,
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
    let entries = if args.images.name.is_empty() {
        entries_from_pipeline(ctx)?
    } else {
        find_entries(ctx, &args)?
    };
    if entries.is_empty() {
        return Ok(());
    }
    let target = resolve_target(&args.target, args.images.force, args.images.what_if)?;
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
        Some(k) if !args.images.what_if => Some(crate::signing::open_signing_key(ctx, k)?),
        _ => None,
    };
    let entries = match &target {
        Target::Folder(_) => once_per_file(ctx, entries),
        Target::File(_) => entries,
    };
    let downloader = Downloader::from_env(args.images.proxy.as_deref())?;
    let mut stale: Option<(PathBuf, FeedSignature)> = None;
    for entry in &entries {
        let dest = match destination(&target, entry) {
            Ok(d) => d,
            Err(e) => {
                ctx.report(e);
                continue;
            }
        };
        if args.images.what_if {
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
            args.images.force,
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
    query::once_per_image(entries)
        .into_iter()
        .map(|(kept, dropped)| {
            for other in dropped {
                ctx.reporter().verbose(&format!(
                    "{} {} is offered by the sources '{}' and '{other}'; saving it once, from '{}'",
                    kept.name, kept.version, kept.source, kept.source
                ));
            }
            kept
        })
        .collect()
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

/// The entry's `.wim` (see [`FeedEntry::wim_file_name`]) inside the folder, or the file.
fn destination(target: &Target, entry: &FeedEntry) -> Result<PathBuf, CmdError> {
    match target {
        Target::File(f) => Ok(f.clone()),
        Target::Folder(dir) => entry
            .wim_file_name()
            .map(|name| dir.join(name))
            .map_err(|e| CmdError::from(e).hint("use -Destination to choose the file name")),
    }
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
    let query = build_query(&args.images.name, &args.images.versions, false)?;
    let home = ctx.home()?;
    let config = home.load()?;
    let sources = chosen_sources(&config, &args.images.source)?;
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
        match PipedImage::from_object(object).and_then(|p| p.entry()) {
            Ok(e) => entries.push(e),
            Err(problem) => ctx.report(CmdError::failed(format!(
                "object {} on standard input cannot be saved: {problem}",
                i + 1
            ))),
        }
    }
    Ok(entries)
}
