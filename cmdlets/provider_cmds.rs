//! The provider and its sources: `Install-/Get-PackageProvider`,
//! `Register-/Set-/Unregister-/Get-PackageSource`.

use clap::ArgMatches;
use containerimage_provider::config::SourceConfig;
use containerimage_provider::signing::PinnedKey;
use containerimage_provider::source::{self, KeyChange, PROVIDER_NAME, PROVIDER_OLD_NAME};
use containerimage_provider::wildcard;
use serde::Serialize;

use containerimage_provider::progress::Reporter;

use crate::cmdlet::{command_of, parse, CmdError, CmdResult, CmdletDef, Ctx};
use crate::find::check_provider_name;

#[derive(clap::Args, Debug)]
pub struct InstallProviderArgs {
    /// ContainerImage (or the older name ContainerProvider).
    #[arg(long)]
    pub name: String,
    /// Initialise again even if already initialised.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct GetProviderArgs {
    /// Provider name pattern.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RegisterSourceArgs {
    /// The source's name.
    #[arg(long)]
    pub name: String,
    /// A feed URL (http, https, file) or a local feed file or folder.
    #[arg(long)]
    pub location: String,
    /// Install from this source without asking.
    #[arg(long)]
    pub trusted: bool,
    /// Pin a minisign public key (the RW… line, or a minisign .pub file): the source's feed is then used only when <feed>.minisig verifies with it.
    #[arg(long)]
    pub public_key: Option<String>,
    /// Replace a source of the same name.
    #[arg(long)]
    pub force: bool,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct SetSourceArgs {
    /// The source to change.
    #[arg(long)]
    pub name: String,
    /// A new name.
    #[arg(long)]
    pub new_name: Option<String>,
    /// A new location.
    #[arg(long)]
    pub new_location: Option<String>,
    /// -Trusted or -Trusted:$false.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub trusted: Option<bool>,
    /// Pin this minisign public key (the RW… line, or a minisign .pub file), replacing any pinned before.
    #[arg(long, conflicts_with = "no_public_key")]
    pub public_key: Option<String>,
    /// Unpin the source's key: its feed is used again without checking a signature.
    #[arg(long)]
    pub no_public_key: bool,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct UnregisterSourceArgs {
    /// The source to remove (alias: -Name).
    #[arg(long, alias = "name")]
    pub source: String,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct GetSourceArgs {
    /// Source name pattern; wildcards allowed.
    #[arg(long)]
    pub name: Option<String>,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Install-PackageProvider",
        synopsis: "Initialises the ContainerImage provider: configuration and image store. Idempotent.",
        description: "Creates the configuration file and the image store folder in CONTAINERIMAGE_HOME if they are missing; running it again changes nothing (-Force rewrites the configuration as it is). Accepts ContainerImage and the older name ContainerProvider.",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: false,
        examples: &[("containerimage Install-PackageProvider ContainerImage", "Prepares the configuration and store.")],
        command: command_of::<InstallProviderArgs>,
        run: install_package_provider,
    },
    CmdletDef {
        name: "Get-PackageProvider",
        synopsis: "Shows the ContainerImage provider and its options.",
        description: "Shows this provider's name, version and the options it adds to the generic package cmdlets.",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[("containerimage Get-PackageProvider", "Shows the provider.")],
        command: command_of::<GetProviderArgs>,
        run: get_package_provider,
    },
    CmdletDef {
        name: "Register-PackageSource",
        synopsis: "Registers a feed (URL, file or folder) as a source of images.",
        description: "New sources are untrusted: installing from them asks first, unless -Trusted. \
                      -PublicKey pins a minisign public key (the key itself, RW…, or a minisign .pub file): \
                      from then on the source's feed is used only when its signature <feed>.minisig \
                      (feed.xml.minisig for a folder) verifies with that key.",
        positional: &["Name", "Location"],
        mandatory: &["Name", "Location"],
        pipeline: false,
        examples: &[
            (
                "containerimage Register-PackageSource -Name Official -Location https://images.example.com/feed.xml",
                "Registers an HTTP feed.",
            ),
            ("containerimage Register-PackageSource Local /srv/images -Trusted", "Registers a trusted folder."),
            (
                "containerimage Register-PackageSource Official https://images.example.com/feed.xml -PublicKey ./official.pub",
                "Registers an HTTP feed whose signature must verify with the key in official.pub.",
            ),
        ],
        command: command_of::<RegisterSourceArgs>,
        run: register_package_source,
    },
    CmdletDef {
        name: "Set-PackageSource",
        synopsis: "Renames, relocates, (un)trusts a registered source, or pins its signing key.",
        description: "Changes a registered source in place: -NewName renames it, -NewLocation points it elsewhere (local paths are stored absolute), -Trusted or -Trusted:$false sets whether installing from it asks first. \
                      -PublicKey pins a minisign public key (or replaces the one pinned, when the publisher rotates keys); -NoPublicKey unpins it.",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: false,
        examples: &[
            ("containerimage Set-PackageSource Local -Trusted", "Trusts the source Local."),
            ("containerimage Set-PackageSource Local -Trusted:false", "Stops trusting it."),
            ("containerimage Set-PackageSource Official -PublicKey ./official-2.pub", "Pins the publisher's new key."),
            ("containerimage Set-PackageSource Official -NoPublicKey", "Unpins it: the feed is used unsigned."),
        ],
        command: command_of::<SetSourceArgs>,
        run: set_package_source,
    },
    CmdletDef {
        name: "Unregister-PackageSource",
        synopsis: "Removes a registered source.",
        description: "Removes a registered source from the configuration. Images already installed from it stay installed.",
        positional: &["Source"],
        mandatory: &["Source"],
        pipeline: false,
        examples: &[("containerimage Unregister-PackageSource Local", "Forgets the source Local.")],
        command: command_of::<UnregisterSourceArgs>,
        run: unregister_package_source,
    },
    CmdletDef {
        name: "Get-PackageSource",
        synopsis: "Lists the registered sources.",
        description: "Lists the registered sources with their location, whether they are trusted, and whether a signing key is pinned (IsPinned, and its PublicKeyId as minisign shows it). -Name takes a pattern with * and ? wildcards; a plain name that is not registered is an error.",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[("containerimage Get-PackageSource", "Lists every source.")],
        command: command_of::<GetSourceArgs>,
        run: get_package_source,
    },
];

const PROVIDER_SUMMARY: &str =
    "Finds, saves and installs Windows container base OS images (.wim) from feeds.";
/// The options this provider adds to OneGet's generic cmdlets.
const DYNAMIC_OPTIONS: &[&str] = &["AllVersions", "Force", "Trusted"];

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProviderInstalled {
    name: &'static str,
    version: &'static str,
    source: String,
    summary: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProviderInfo {
    name: &'static str,
    version: &'static str,
    dynamic_options: &'static [&'static str],
}

/// A source as OneGet shows it, and whether a signing key is pinned.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PackageSource {
    name: String,
    location: String,
    is_trusted: bool,
    provider_name: &'static str,
    is_pinned: bool,
    /// The pinned key's ID as minisign shows it (`minisign public key <ID>`).
    public_key_id: Option<String>,
    /// The pinned key itself, as in a minisign `.pub` file.
    public_key: Option<String>,
}

impl PackageSource {
    fn of(s: &SourceConfig) -> PackageSource {
        let key_id = s.public_key.as_deref().map(|k| {
            PinnedKey::from_base64(k)
                .map(|p| p.id().to_string())
                .unwrap_or_else(|| "(damaged)".to_string())
        });
        PackageSource {
            name: s.name.clone(),
            location: s.location.clone(),
            is_trusted: s.trusted,
            provider_name: PROVIDER_NAME,
            is_pinned: s.public_key.is_some(),
            public_key_id: key_id,
            public_key: s.public_key.clone(),
        }
    }
}

const SOURCE_COLUMNS: &[&str] = &["Name", "ProviderName", "IsTrusted", "IsPinned", "Location"];

/// A `-PublicKey` value as a key, or a failure that says what is expected.
fn public_key_param(value: Option<&str>) -> Result<Option<PinnedKey>, CmdError> {
    value
        .map(|v| {
            PinnedKey::from_argument(v.trim()).map_err(|e| {
                CmdError::from(e).context("cannot pin the -PublicKey").hint(
                    "give the minisign public key (the line that starts with RW) or the .pub file \
                     `minisign -G` wrote; the publisher's key, not the secret key",
                )
            })
        })
        .transpose()
}

fn is_this_provider(name: &str) -> bool {
    let n = name.trim();
    n.eq_ignore_ascii_case(PROVIDER_NAME) || n.eq_ignore_ascii_case(PROVIDER_OLD_NAME)
}

fn install_package_provider(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: InstallProviderArgs = parse(m)?;
    if !is_this_provider(&args.name) {
        return Err(CmdError::failed(format!(
            "No match was found for the specified search criteria for the provider '{}'.",
            args.name.trim()
        ))
        .hint(format!(
            "this program is the '{PROVIDER_NAME}' provider (also known as '{PROVIDER_OLD_NAME}')"
        )));
    }
    let home = ctx.home()?;
    let config = home.load()?;
    if args.force || !home.config_path().exists() {
        home.save(&config)?;
    }
    let store = home.store_path(&config);
    std::fs::create_dir_all(&store).map_err(|e| {
        CmdError::from(e).context(format!("cannot create the image store {}", store.display()))
    })?;
    ctx.emit(
        &ProviderInstalled {
            name: PROVIDER_NAME,
            version: env!("CARGO_PKG_VERSION"),
            source: home.root().display().to_string(),
            summary: PROVIDER_SUMMARY,
        },
        &["Name", "Version", "Source", "Summary"],
    )
}

fn get_package_provider(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: GetProviderArgs = parse(m)?;
    if let Some(pattern) = args
        .name
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let matches = wildcard::matches(pattern, PROVIDER_NAME)
            || wildcard::matches(pattern, PROVIDER_OLD_NAME);
        if !matches {
            if wildcard::has_wildcards(pattern) {
                return Ok(());
            }
            return Err(CmdError::failed(format!(
                "Unable to find package provider '{pattern}'. Run 'Get-PackageProvider' to see the providers."
            )));
        }
    }
    ctx.emit(
        &ProviderInfo {
            name: PROVIDER_NAME,
            version: env!("CARGO_PKG_VERSION"),
            dynamic_options: DYNAMIC_OPTIONS,
        },
        &["Name", "Version", "DynamicOptions"],
    )
}

fn register_package_source(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: RegisterSourceArgs = parse(m)?;
    check_provider_name(args.provider_name.as_deref())?;
    let key = public_key_param(args.public_key.as_deref())?;
    let home = ctx.home()?;
    let mut config = home.load()?;
    let added = source::register(
        &mut config,
        &args.name,
        &args.location,
        args.trusted,
        key.as_ref(),
        args.force,
    )?;
    if let Some(k) = &key {
        ctx.reporter().verbose(&format!(
            "Source '{}' is pinned to the minisign key ID {}",
            added.name,
            k.id()
        ));
    }
    home.save(&config)?;
    warn_if_unreadable(ctx, &added);
    ctx.emit(&PackageSource::of(&added), SOURCE_COLUMNS)
}

fn set_package_source(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: SetSourceArgs = parse(m)?;
    check_provider_name(args.provider_name.as_deref())?;
    let key = match public_key_param(args.public_key.as_deref())? {
        Some(k) => KeyChange::Pin(k),
        None if args.no_public_key => KeyChange::Unpin,
        None => KeyChange::Keep,
    };
    let home = ctx.home()?;
    let mut config = home.load()?;
    let changed = source::set(
        &mut config,
        &args.name,
        args.new_name.as_deref(),
        args.new_location.as_deref(),
        args.trusted,
        key,
    )?;
    home.save(&config)?;
    if args.new_location.is_some() {
        warn_if_unreadable(ctx, &changed);
    }
    ctx.emit(&PackageSource::of(&changed), SOURCE_COLUMNS)
}

/// Registered as PowerShell does, whatever the location; a warning when it
/// cannot be read as a feed now.
fn warn_if_unreadable(ctx: &Ctx, source: &containerimage_provider::config::SourceConfig) {
    if let Some(problem) = source::check_location(&source.location) {
        containerimage_provider::progress::Reporter::warn(
            ctx.reporter(),
            &format!("the source '{}' is registered, but {problem}", source.name),
        );
    }
}

fn unregister_package_source(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: UnregisterSourceArgs = parse(m)?;
    check_provider_name(args.provider_name.as_deref())?;
    let home = ctx.home()?;
    let mut config = home.load()?;
    source::unregister(&mut config, &args.source)?;
    home.save(&config)?;
    Ok(())
}

fn get_package_source(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: GetSourceArgs = parse(m)?;
    check_provider_name(args.provider_name.as_deref())?;
    let home = ctx.home()?;
    let config = home.load()?;
    for s in source::matching(&config, args.name.as_deref())? {
        ctx.emit(&PackageSource::of(&s), SOURCE_COLUMNS)?;
    }
    Ok(())
}
