//! The image store: `Install-ContainerImage`, `Install-ContainerOSImage`,
//! `Get-ContainerImage`, `Uninstall-ContainerOSImage`, `Remove-ContainerImage`,
//! `Move-ContainerImageRepository`, `Test-ContainerImage`, and OneGet's
//! `Get-/Install-/Uninstall-Package`.

use clap::ArgMatches;
use containerimage_provider::progress::Reporter;
use containerimage_provider::store::{ImageFilter, ImageRecord, Listing, Store, Tags};
use serde::Serialize;

use crate::cmdlet::{command_of, parse, property, CmdError, CmdResult, CmdletDef, Ctx};
use crate::find::{check_provider_name, version_param};

#[derive(clap::Args, Debug)]
pub struct GetImageArgs {
    /// Name pattern; wildcards allowed.
    #[arg(long)]
    pub name: Option<String>,
    /// Publisher, e.g. CN=Microsoft.
    #[arg(long)]
    pub publisher: Option<String>,
    /// Exactly this version.
    #[arg(long)]
    pub version: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct GetPackageArgs {
    /// Name pattern; wildcards allowed.
    #[arg(long)]
    pub name: Option<String>,
    /// Exactly this version.
    #[arg(long, alias = "version")]
    pub required_version: Option<String>,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    /// The image's full name, e.g. CN=Microsoft_NanoServer_10.0.14300.1010.
    #[arg(long)]
    pub full_name: Option<String>,
    /// The image's name; must match exactly one installed image.
    #[arg(long)]
    pub name: Option<String>,
    /// Accepted as in the Containers module; nothing asks before removing, so it changes nothing.
    #[arg(long)]
    pub force: bool,
    /// Show what would be removed, change nothing.
    #[arg(long)]
    pub what_if: bool,
}

#[derive(clap::Args, Debug)]
pub struct UninstallPackageArgs {
    /// The image's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Exactly this version.
    #[arg(long, alias = "version")]
    pub required_version: Option<String>,
    /// Accepted as in the Containers module; nothing asks before removing, so it changes nothing.
    #[arg(long)]
    pub force: bool,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    /// Name pattern.
    #[arg(long)]
    pub name: Option<String>,
    /// Publisher.
    #[arg(long)]
    pub publisher: Option<String>,
    /// Exactly this version.
    #[arg(long)]
    pub version: Option<String>,
    /// Accepted as in the Containers module; nothing asks before removing, so it changes nothing.
    #[arg(long)]
    pub force: bool,
    /// Show what would be removed, change nothing.
    #[arg(long)]
    pub what_if: bool,
}

#[derive(clap::Args, Debug)]
pub struct MoveArgs {
    /// The new location of the store; must not exist.
    #[arg(long)]
    pub path: std::path::PathBuf,
    /// Shows what would be moved where; moves nothing.
    #[arg(long)]
    pub what_if: bool,
}

#[derive(clap::Args, Debug)]
pub struct TestImageArgs {
    /// Name pattern; wildcards allowed.
    #[arg(long)]
    pub name: Option<String>,
}

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Get-ContainerImage",
        synopsis: "Lists installed images.",
        description: "",
        positional: &["Name", "Publisher", "Version"],
        mandatory: &[],
        pipeline: false,
        examples: &[
            ("containerimage Get-ContainerImage", "Lists every installed image."),
            ("containerimage Get-ContainerImage 'Nano*' -OutputFormat Json", "As JSON Lines with every field."),
        ],
        command: command_of::<GetImageArgs>,
        run: get_container_image,
    },
    CmdletDef {
        name: "Get-Package",
        synopsis: "Get-ContainerImage under OneGet's generic name (-ProviderName ContainerImage).",
        description: "",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[("containerimage Get-Package -ProviderName ContainerImage", "Lists installed images.")],
        command: command_of::<GetPackageArgs>,
        run: get_package,
    },
    CmdletDef {
        name: "Uninstall-ContainerOSImage",
        synopsis: "Removes an installed OS image.",
        description: "An image other images depend on cannot be removed; the error names them.",
        positional: &["FullName"],
        mandatory: &[],
        pipeline: true,
        examples: &[
            (
                "containerimage Uninstall-ContainerOSImage CN=Microsoft_NanoServer_10.0.14300.1010",
                "Removes that image.",
            ),
            (
                "containerimage Get-ContainerImage Nano* | containerimage Uninstall-ContainerOSImage",
                "Removes what Get listed.",
            ),
        ],
        command: command_of::<UninstallArgs>,
        run: uninstall_os_image,
    },
    CmdletDef {
        name: "Uninstall-Package",
        synopsis: "Uninstall-ContainerOSImage under OneGet's generic name (-ProviderName ContainerImage).",
        description: "",
        positional: &["Name"],
        mandatory: &[],
        pipeline: true,
        examples: &[("containerimage Uninstall-Package -ProviderName ContainerImage -Name NanoServer", "Removes it.")],
        command: command_of::<UninstallPackageArgs>,
        run: uninstall_package,
    },
    CmdletDef {
        name: "Remove-ContainerImage",
        synopsis: "Removes installed images that are not OS images.",
        description: "OS images are removed with Uninstall-ContainerOSImage.",
        positional: &["Name", "Publisher", "Version"],
        mandatory: &[],
        pipeline: true,
        examples: &[("containerimage Remove-ContainerImage MyApp", "Removes the image MyApp.")],
        command: command_of::<RemoveArgs>,
        run: remove_container_image,
    },
    CmdletDef {
        name: "Move-ContainerImageRepository",
        synopsis: "Moves the image store to a new folder.",
        description: "The folder must not exist. An interrupted move leaves the store usable at one of the two places.",
        positional: &["Path"],
        mandatory: &["Path"],
        pipeline: false,
        examples: &[
            ("containerimage Move-ContainerImageRepository /data/images", "Moves the store."),
            ("containerimage Move-ContainerImageRepository /data/images -WhatIf", "Says what would move where; moves nothing."),
        ],
        command: command_of::<MoveArgs>,
        run: move_repository,
    },
    CmdletDef {
        name: "Test-ContainerImage",
        synopsis: "Re-hashes installed files against what was recorded at install.",
        description: "",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[("containerimage Test-ContainerImage", "Checks every installed image.")],
        command: command_of::<TestImageArgs>,
        run: test_container_image,
    },
];

/// An installed image as Get-ContainerImage shows it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageObject {
    pub name: String,
    pub publisher: String,
    pub version: String,
    #[serde(rename = "IsOSImage")]
    pub is_os_image: bool,
    pub full_name: String,
    pub id: String,
    pub parent_image: Option<String>,
    pub path: String,
    pub size: u64,
    pub created: String,
    /// `repository:tag`, as `docker images` lists them.
    pub repo_tags: Vec<String>,
}

pub const IMAGE_COLUMNS: &[&str] = &["Name", "Publisher", "Version", "IsOSImage"];

pub fn image_object(store: &Store, r: &ImageRecord, tags: &Tags) -> ImageObject {
    ImageObject {
        name: r.name.clone(),
        publisher: r.publisher.clone(),
        version: r.version.clone(),
        is_os_image: r.is_os_image,
        full_name: r.full_name.clone(),
        id: r.id.clone(),
        parent_image: r.parent_image.clone(),
        path: store.image_path(&r.full_name).display().to_string(),
        size: r.size,
        created: r.created.clone(),
        repo_tags: tags
            .of(&r.full_name)
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}

pub(crate) fn open_store(ctx: &Ctx) -> Result<Store, CmdError> {
    let home = ctx.home()?;
    Ok(Store::open(&home, ctx.reporter())?)
}

fn no_installed_match(what: &str) -> CmdError {
    CmdError::failed(format!("No installed image matches {what}."))
        .hint("Get-ContainerImage lists the installed images.")
}

/// The installed images a filter selects; a name without wildcards that
/// selects nothing is an error.
fn select(store: &Store, ctx: &Ctx, filter: &ImageFilter) -> Result<Vec<ImageRecord>, CmdError> {
    let images: Vec<ImageRecord> = store
        .images(ctx.reporter())?
        .into_iter()
        .filter(|r| filter.matches(r))
        .collect();
    if images.is_empty() {
        if let Some(name) = filter
            .name
            .as_deref()
            .filter(|n| !containerimage_provider::wildcard::has_wildcards(n))
        {
            return Err(no_installed_match(&format!("the name '{name}'")));
        }
    }
    Ok(images)
}

fn get_container_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: GetImageArgs = parse(m)?;
    let filter = ImageFilter {
        name: args.name,
        publisher: args.publisher,
        version: version_param("Version", args.version.as_deref())?,
    };
    let store = open_store(ctx)?;
    let listing = store.listing(ctx.reporter())?;
    for r in select(&store, ctx, &filter)? {
        emit_image(ctx, &store, &r, &listing)?;
    }
    Ok(())
}

/// The seeds' view of a ParentImage in tables and lists:
/// `ContainerImage (Name = 'NanoServer') [Publisher = 'CN=Microsoft', Version = '10.0.10586.0']`.
pub fn parent_display(parent: &ImageRecord) -> String {
    format!(
        "ContainerImage (Name = '{}') [Publisher = '{}', Version = '{}']",
        parent.name, parent.publisher, parent.version
    )
}

/// Writes an image as Get-ContainerImage does: JSON gives the ParentImage's
/// FullName, tables and lists show it as the seeds did.
pub fn emit_image(ctx: &mut Ctx, store: &Store, r: &ImageRecord, listing: &Listing) -> CmdResult {
    let object = image_object(store, r, &listing.tags);
    if ctx.output_format() == crate::output::OutputFormat::Json {
        return ctx.emit(&object, IMAGE_COLUMNS);
    }
    let mut value = serde_json::to_value(&object)
        .map_err(|e| CmdError::from(e).context("cannot write to standard output"))?;
    if let Some(parent) = r.parent_image.as_deref().and_then(|p| {
        listing
            .images
            .iter()
            .find(|i| containerimage_provider::store::same_full_name(&i.full_name, p))
    }) {
        value["ParentImage"] = serde_json::Value::String(parent_display(parent));
    }
    ctx.emit(&value, IMAGE_COLUMNS)
}

fn get_package(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: GetPackageArgs = parse(m)?;
    check_provider_name(args.provider_name.as_deref())?;
    let filter = ImageFilter {
        name: args.name,
        publisher: None,
        version: version_param("RequiredVersion", args.required_version.as_deref())?,
    };
    let store = open_store(ctx)?;
    let tags = store.listing(ctx.reporter())?.tags;
    for r in select(&store, ctx, &filter)? {
        ctx.emit(&image_object(&store, &r, &tags), IMAGE_COLUMNS)?;
    }
    Ok(())
}

/// FullNames from pipeline objects (Get-ContainerImage's output).
fn piped_full_names(ctx: &Ctx) -> Result<Vec<String>, CmdError> {
    let mut names = Vec::new();
    for object in ctx.pipeline_input()? {
        match property(&object, "FullName") {
            Some(f) => names.push(f.to_string()),
            None => {
                return Err(CmdError::usage(
                    "the objects on standard input have no FullName; pipe Get-ContainerImage into this cmdlet",
                ))
            }
        }
    }
    Ok(names)
}

#[derive(PartialEq)]
enum Kind {
    OsImage,
    Other,
}

/// Removes the images named by FullName, each failure reported on its own.
fn remove_each(
    ctx: &mut Ctx,
    store: &Store,
    full_names: &[String],
    kind: Kind,
    what_if: bool,
) -> CmdResult {
    let mut lock = store.lock(ctx.reporter())?;
    for full_name in full_names {
        let Some(record) = lock.find(full_name).cloned() else {
            ctx.report(no_installed_match(&format!("the full name '{full_name}'")));
            continue;
        };
        if kind == Kind::Other && record.is_os_image {
            ctx.report(
                CmdError::failed(format!("{} is an OS image", record.full_name)).hint(format!(
                    "remove it with: containerimage Uninstall-ContainerOSImage -FullName '{}'",
                    record.full_name
                )),
            );
            continue;
        }
        if kind == Kind::OsImage && !record.is_os_image {
            ctx.report(
                CmdError::failed(format!("{} is not an OS image", record.full_name)).hint(
                    format!(
                        "remove it with: containerimage Remove-ContainerImage -Name '{}' -Publisher '{}' -Version {}",
                        record.name, record.publisher, record.version
                    ),
                ),
            );
            continue;
        }
        if what_if {
            ctx.what_if("Remove", &record.full_name);
            continue;
        }
        let reporter = ctx.reporter();
        if let Err(e) = lock.remove(&record.full_name, reporter) {
            ctx.report(CmdError::from(e));
        } else {
            ctx.reporter().verbose(&format!(
                "removed {}",
                store.image_path(&record.full_name).display()
            ));
        }
    }
    Ok(())
}

fn uninstall_os_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: UninstallArgs = parse(m)?;
    let store = open_store(ctx)?;
    let full_names = match (args.full_name, args.name) {
        (Some(_), Some(_)) => {
            return Err(CmdError::usage("give -FullName or -Name, not both"));
        }
        (Some(f), None) => vec![f],
        (None, Some(name)) => {
            let filter = ImageFilter {
                name: Some(name.clone()),
                ..ImageFilter::default()
            };
            one_match(&select(&store, ctx, &filter)?, &name)?
        }
        (None, None) => {
            let names = piped_full_names(ctx)?;
            if names.is_empty() {
                if ctx.empty_pipe() {
                    return Ok(());
                }
                return Err(CmdError::usage(
                    "give -FullName or -Name, or pipe Get-ContainerImage objects in",
                ));
            }
            names
        }
    };
    remove_each(ctx, &store, &full_names, Kind::OsImage, args.what_if)
}

/// The one image a name selects; several are an error listing them.
fn one_match(images: &[ImageRecord], what: &str) -> Result<Vec<String>, CmdError> {
    match images {
        [] => Err(no_installed_match(&format!("'{what}'"))),
        [one] => Ok(vec![one.full_name.clone()]),
        many => Err(CmdError::failed(format!(
            "'{what}' matches several installed images: {}",
            many.iter()
                .map(|r| r.full_name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .hint("name one of them with -FullName")),
    }
}

fn uninstall_package(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: UninstallPackageArgs = parse(m)?;
    check_provider_name(args.provider_name.as_deref())?;
    let store = open_store(ctx)?;
    let full_names = match args.name {
        Some(name) => {
            let filter = ImageFilter {
                name: Some(name.clone()),
                publisher: None,
                version: version_param("RequiredVersion", args.required_version.as_deref())?,
            };
            one_match(&select(&store, ctx, &filter)?, &name)?
        }
        None => {
            let names = piped_full_names(ctx)?;
            if names.is_empty() {
                if ctx.empty_pipe() {
                    return Ok(());
                }
                return Err(CmdError::usage(
                    "give -Name, or pipe Get-Package objects in",
                ));
            }
            names
        }
    };
    remove_each(ctx, &store, &full_names, Kind::OsImage, false)
}

fn remove_container_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: RemoveArgs = parse(m)?;
    let store = open_store(ctx)?;
    let given = args.name.is_some() || args.publisher.is_some() || args.version.is_some();
    let full_names = if given {
        let filter = ImageFilter {
            name: args.name,
            publisher: args.publisher,
            version: version_param("Version", args.version.as_deref())?,
        };
        let images = select(&store, ctx, &filter)?;
        if images.is_empty() {
            return Err(no_installed_match("the given name, publisher and version"));
        }
        images.into_iter().map(|r| r.full_name).collect()
    } else {
        let names = piped_full_names(ctx)?;
        if names.is_empty() {
            if ctx.empty_pipe() {
                return Ok(());
            }
            return Err(CmdError::usage(
                "give -Name, -Publisher or -Version, or pipe Get-ContainerImage objects in",
            ));
        }
        names
    };
    remove_each(ctx, &store, &full_names, Kind::Other, args.what_if)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RepositoryObject {
    path: String,
}

fn move_repository(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: MoveArgs = parse(m)?;
    let store = open_store(ctx)?;
    if args.what_if {
        ctx.what_if(
            "Move Directory",
            &format!(
                "Item: {} Destination: {}",
                store.root().display(),
                args.path.display()
            ),
        );
        return Ok(());
    }
    let lock = store.lock(ctx.reporter())?;
    let moved = lock.relocate(&args.path, ctx.reporter())?;
    ctx.emit(
        &RepositoryObject {
            path: moved.display().to_string(),
        },
        &["Path"],
    )
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TestObject {
    name: String,
    version: String,
    full_name: String,
    is_valid: bool,
    problems: Vec<String>,
}

fn test_container_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: TestImageArgs = parse(m)?;
    let filter = ImageFilter {
        name: args.name,
        ..ImageFilter::default()
    };
    let store = open_store(ctx)?;
    let mut invalid = 0;
    for r in select(&store, ctx, &filter)? {
        ctx.reporter().verbose(&format!("checking {}", r.full_name));
        let problems = store.verify(&r)?;
        if !problems.is_empty() {
            invalid += 1;
        }
        let object = TestObject {
            name: r.name,
            version: r.version,
            full_name: r.full_name,
            is_valid: problems.is_empty(),
            problems,
        };
        ctx.emit(&object, &["Name", "Version", "IsValid", "Problems"])?;
    }
    if invalid > 0 {
        return Err(CmdError::failed(format!(
            "{invalid} installed image(s) differ from what was installed"
        ))
        .hint("reinstall them with -Force"));
    }
    Ok(())
}
