//! Feeds: `Find-ContainerImage`, `Find-Package`, `New-ContainerImageFeed`.

use std::path::Path;

use clap::ArgMatches;
use containerimage_provider::feed::{self, FeedEntry, FeedRecord};
use containerimage_provider::location::{Location, Url};
use containerimage_provider::progress::Reporter;
use containerimage_provider::query::{self, Query};
use containerimage_provider::source::{
    self, FeedClient, SourceError, PROVIDER_NAME, PROVIDER_OLD_NAME,
};
use containerimage_provider::version::Version;
use serde::Serialize;

use crate::cmdlet::{command_of, parse, CmdError, CmdResult, CmdletDef, Ctx};

/// Version bounds shared by Find, Save and Install.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct VersionArgs {
    /// The lowest version to accept (inclusive).
    #[arg(long)]
    pub minimum_version: Option<String>,
    /// The highest version to accept (inclusive).
    #[arg(long)]
    pub maximum_version: Option<String>,
    /// Exactly this version (alias: -Version).
    #[arg(long, alias = "version")]
    pub required_version: Option<String>,
}

/// Which images to fetch from the registered sources, and how: the
/// parameters Save and Install share.
#[derive(clap::Args, Debug)]
pub struct ImageChoice {
    /// Image names; wildcards allowed. Omit to read Find-ContainerImage objects from standard input.
    #[arg(long)]
    pub name: Vec<String>,
    #[command(flatten)]
    pub versions: VersionArgs,
    /// Only these registered sources.
    #[arg(long)]
    pub source: Vec<String>,
    /// Save: download again even when a verified file is there, and create a missing folder. Install: install from untrusted sources without asking, and reinstall an installed image.
    #[arg(long)]
    pub force: bool,
    /// Show what would be saved or installed, change nothing.
    #[arg(long)]
    pub what_if: bool,
    /// An HTTP proxy URL (overrides HTTPS_PROXY/HTTP_PROXY).
    #[arg(long)]
    pub proxy: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct FindArgs {
    /// Image names; wildcards * and ? allowed.
    #[arg(long)]
    pub name: Vec<String>,
    #[command(flatten)]
    pub versions: VersionArgs,
    /// Every matching version, not only the highest of each name.
    #[arg(long)]
    pub all_versions: bool,
    /// Only these registered sources.
    #[arg(long)]
    pub source: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct FindPackageArgs {
    #[command(flatten)]
    pub find: FindArgs,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct NewFeedArgs {
    /// The folder of .wim files.
    #[arg(long)]
    pub path: String,
    /// The URL the folder will be served at; locations are written relative without it.
    #[arg(long)]
    pub base_uri: Option<String>,
    /// A minisign secret key file: feed.xml.minisig is written beside feed.xml. An encrypted key's password is asked on the terminal, or read from CONTAINERIMAGE_SIGNING_KEY_PASSWORD.
    #[arg(long)]
    pub signing_key: Option<String>,
}

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Find-ContainerImage",
        synopsis: "Finds container OS images in the registered sources.",
        description: "Searches every registered source (or those named by -Source) for images whose name matches. \
                      Without version parameters only the highest version of each name is returned.",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[
            ("containerimage Find-ContainerImage", "Lists the newest version of every image."),
            ("containerimage Find-ContainerImage '*nano*' -AllVersions", "Every version of every Nano Server image."),
            (
                "containerimage Find-ContainerImage NanoServer -MinimumVersion 10.0.14300 -Source Local",
                "Nano Server images from version 10.0.14300 on, from the source named Local.",
            ),
        ],
        command: command_of::<FindArgs>,
        run: find_container_image,
    },
    CmdletDef {
        name: "Find-Package",
        synopsis: "Find-ContainerImage under OneGet's generic name (-ProviderName ContainerImage).",
        description: "Runs Find-ContainerImage with the same parameters; -ProviderName, when given, must name this provider (ContainerImage or ContainerProvider).",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[("containerimage Find-Package -ProviderName ContainerImage -Name NanoServer", "Finds Nano Server.")],
        command: command_of::<FindPackageArgs>,
        run: find_package,
    },
    CmdletDef {
        name: "New-ContainerImageFeed",
        synopsis: "Writes feed.xml for a folder of .wim files.",
        description: "Reads name, version and description from every .wim file in the folder (and one level below), \
                      computes size and SHA-256, and writes the folder's feed.xml. \
                      With -SigningKey <minisign secret key file> it also writes feed.xml.minisig, a minisign signature \
                      that sources pinned to the matching public key require (Register-PackageSource -PublicKey). \
                      The password of an encrypted key is asked on the terminal; scripts set it in the \
                      environment variable CONTAINERIMAGE_SIGNING_KEY_PASSWORD instead. Keys made with \
                      `minisign -G -W` have no password.",
        positional: &["Path"],
        mandatory: &["Path"],
        pipeline: false,
        examples: &[
            ("containerimage New-ContainerImageFeed -Path /srv/images", "Makes /srv/images a feed."),
            (
                "containerimage New-ContainerImageFeed /srv/images -BaseUri https://images.example.com/",
                "Writes absolute locations under that URL.",
            ),
            (
                "containerimage New-ContainerImageFeed /srv/images -SigningKey ~/.minisign/minisign.key",
                "Writes feed.xml and signs it (feed.xml.minisig).",
            ),
        ],
        command: command_of::<NewFeedArgs>,
        run: new_container_image_feed,
    },
];

/// An image as Find shows it. The table shows Name, Version, Source and
/// Description; JSON carries every field.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct FoundImage {
    pub name: String,
    pub version: String,
    pub source: String,
    pub description: Option<String>,
    pub publisher: Option<String>,
    pub architecture: Option<String>,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// The first download location (the mirror tried first).
    pub location: Option<String>,
    /// Every download location, in the order they are tried, so that
    /// `Find | Save` and `Find | Install` keep the mirrors.
    pub locations: Vec<String>,
}

impl FoundImage {
    pub fn of(entry: &FeedEntry) -> FoundImage {
        FoundImage {
            name: entry.name.clone(),
            version: entry.version.to_string(),
            source: entry.source.clone(),
            description: entry.description.clone(),
            publisher: entry.publisher.clone(),
            architecture: entry.architecture.clone(),
            size: entry.size,
            sha256: entry.sha256_hex(),
            location: entry.locations.first().map(ToString::to_string),
            locations: entry.locations.iter().map(ToString::to_string).collect(),
        }
    }
}

const FIND_COLUMNS: &[&str] = &["Name", "Version", "Source", "Description"];

/// Reads a version parameter; a value that is not a version is a usage error.
pub fn version_param(parameter: &str, value: Option<&str>) -> Result<Option<Version>, CmdError> {
    value
        .map(|v| {
            v.parse::<Version>().map_err(|e| {
                CmdError::usage(format!(
                    "Cannot bind parameter '{parameter}'. Cannot convert value \"{v}\" to type \"System.Version\": {e}"
                ))
            })
        })
        .transpose()
}

/// The query for names and version parameters, with OneGet's usage errors.
pub fn build_query(
    names: &[String],
    versions: &VersionArgs,
    all_versions: bool,
) -> Result<Query, CmdError> {
    let minimum = version_param("MinimumVersion", versions.minimum_version.as_deref())?;
    let maximum = version_param("MaximumVersion", versions.maximum_version.as_deref())?;
    let required = version_param("RequiredVersion", versions.required_version.as_deref())?;
    Query::new(names.to_vec(), minimum, maximum, required, all_versions)
        .map_err(|e| CmdError::usage(e.to_string()))
}

/// The sources to search, or a failure saying how to register one.
pub fn chosen_sources(
    config: &containerimage_provider::config::Config,
    names: &[String],
) -> Result<Vec<containerimage_provider::config::SourceConfig>, CmdError> {
    source::select(config, names).map_err(|e| match e {
        SourceError::NoneRegistered => CmdError::failed(
            "no package source is registered, so there is nothing to search",
        )
        .hint(
            "register a feed first: containerimage Register-PackageSource -Name <name> -Location <feed URL, feed file or folder>",
        ),
        other => CmdError::from(other),
    })
}

/// Reports each source refused because its feed's signature does not
/// verify with its pinned key, with what to do about it.
pub fn report_unverified(ctx: &mut Ctx, refused: Vec<SourceError>) {
    for e in refused {
        let name = match &e {
            SourceError::Unverified { name, .. } | SourceError::BadPinnedKey { name, .. } => {
                name.clone()
            }
            _ => String::from("<name>"),
        };
        let hint = format!(
            "the feed's publisher signs it with `containerimage New-ContainerImageFeed -Path <folder> -SigningKey <secret key file>` \
             or `minisign -S -s <secret key file> -m <feed file>`, and publishes <feed>.minisig beside the feed; \
             if the publisher changed keys, pin the new one with `containerimage Set-PackageSource -Name '{name}' -PublicKey <key or .pub file>`"
        );
        ctx.report(CmdError::from(e).hint(hint));
    }
}

fn find_container_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: FindArgs = parse(m)?;
    run_find(ctx, &args)
}

fn find_package(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: FindPackageArgs = parse(m)?;
    check_provider_name(args.provider_name.as_deref())?;
    run_find(ctx, &args.find)
}

/// Accepts a `-ProviderName` naming this provider.
pub fn check_provider_name(name: Option<&str>) -> CmdResult {
    match name.map(str::trim) {
        None => Ok(()),
        Some(n) if n.eq_ignore_ascii_case(PROVIDER_NAME) || n.eq_ignore_ascii_case(PROVIDER_OLD_NAME) => Ok(()),
        Some(n) => Err(CmdError::failed(format!(
            "Unable to find package provider '{n}'. It may not be imported yet. Run 'Get-PackageProvider' to see the providers."
        ))
        .hint(format!("this program is the '{PROVIDER_NAME}' provider; use -ProviderName {PROVIDER_NAME}"))),
    }
}

fn run_find(ctx: &mut Ctx, args: &FindArgs) -> CmdResult {
    let query = build_query(&args.name, &args.versions, args.all_versions)?;
    let home = ctx.home()?;
    let config = home.load()?;
    let sources = chosen_sources(&config, &args.source)?;
    let client =
        FeedClient::default().with_hash_cache(home.root().join("cache").join("wim-hashes.json"));
    let mut result = query::find(&sources, &query, &client, ctx.reporter());
    report_unverified(ctx, std::mem::take(&mut result.unverified_sources));
    for entry in &result.entries {
        ctx.emit(&FoundImage::of(entry), FIND_COLUMNS)?;
    }
    for name in &result.missing_wildcards {
        ctx.reporter().verbose(&format!(
            "No matches found for the wildcard pattern '{name}'."
        ));
    }
    for message in result.no_match_messages() {
        ctx.report(CmdError::failed(message));
    }
    Ok(())
}

fn new_container_image_feed(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: NewFeedArgs = parse(m)?;
    let folder = Path::new(&args.path);
    if !folder.is_dir() {
        return Err(CmdError::failed(format!(
            "cannot make a feed of {}: it is not a folder",
            folder.display()
        ))
        .hint("give -Path the folder that holds the .wim files"));
    }
    let base = args.base_uri.as_deref().map(base_uri).transpose()?;
    // Opened first, so a wrong password costs no hashing.
    let key = args
        .signing_key
        .as_deref()
        .map(|k| crate::signing::open_signing_key(ctx, k))
        .transpose()?;
    let scan = feed::scan_wim_folder(folder, None, ctx.reporter())?;
    let mut records: Vec<FeedRecord> = scan.records;
    if let Some(base) = &base {
        for r in &mut records {
            for l in &mut r.locations {
                *l = base
                    .join(l)
                    .map_err(|e| {
                        CmdError::failed(format!("cannot make a URL of {l} under {base}: {e}"))
                    })?
                    .to_string();
            }
        }
    }
    if records.is_empty() && scan.failures.is_empty() {
        ctx.reporter().warn(&format!(
            "{} holds no .wim files; the feed is empty",
            folder.display()
        ));
    }
    let signature = feed::write_feed_file(folder, &records, key.as_ref())?;
    crate::signing::report_feed_signature(
        ctx,
        &folder.join(feed::FEED_FILE_NAME),
        &signature,
        &format!(
            "`containerimage New-ContainerImageFeed -Path {} -SigningKey <secret key file>`",
            folder.display()
        ),
    );
    let source = folder.display().to_string();
    let feed_base = feed::FeedBase::Folder(folder.to_path_buf());
    for record in records {
        let written = record.locations.first().cloned();
        let entry = record.resolve(&feed_base, &source, &source)?;
        let mut shown = FoundImage::of(&entry);
        // The location as the feed writes it: relative to the folder, or under -BaseUri.
        shown.location = written;
        ctx.emit(&shown, &["Name", "Version", "Size", "Location"])?;
    }
    for failure in scan.failures {
        ctx.report(CmdError::from(failure).context(format!(
            "a .wim file in {} was left out of the feed",
            folder.display()
        )));
    }
    Ok(())
}

/// The `-BaseUri` as a folder URL (ending in `/`), so file names join under it.
fn base_uri(text: &str) -> Result<Url, CmdError> {
    let t = text.trim();
    let with_slash = if t.ends_with('/') {
        t.to_string()
    } else {
        format!("{t}/")
    };
    match Location::parse(&with_slash) {
        Ok(Location::Http(u)) => Ok(u),
        _ => Err(CmdError::usage(format!(
            "Cannot bind parameter 'BaseUri'. '{t}' is not an http:// or https:// URL."
        ))),
    }
}
