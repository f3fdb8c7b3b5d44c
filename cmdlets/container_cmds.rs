//! Containers and child images: `New-Container` [`create`], `Get-Container`
//! [`ps -a`], `Remove-Container` [`rm`] and `New-ContainerImage` [`commit`].

use std::path::PathBuf;

use clap::ArgMatches;
use containerimage_provider::container::{self, CommitNames, CommitSource, ContainerRecord};
use containerimage_provider::store::{normalize_publisher, Tag};
use containerimage_provider::version::Version;
use serde::Serialize;

use crate::cmdlet::{command_of, parse, CmdError, CmdResult, CmdletDef, Ctx};
use crate::find::version_param;
use crate::store_cmds::{emit_image, open_store};

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "New-Container",
        synopsis: "Makes a container: a writable copy of an image's files (its layers composed) to change with any tool.",
        description: "The copy is <home>/containers/<Name>/Files. Files are cloned (copy-on-write) where the file system can, else copied. The image cannot be removed while the container exists.",
        positional: &["ContainerImage", "Name"],
        mandatory: &["ContainerImage", "Name"],
        pipeline: false,
        examples: &[(
            "containerimage New-Container nanoserver:10.0.14300.1010 demo",
            "Copies the image's files into the container demo.",
        )],
        command: command_of::<NewContainerArgs>,
        run: new_container,
    },
    CmdletDef {
        name: "create",
        synopsis: "docker create: New-Container with docker's arguments (--name NAME IMAGE).",
        description: "",
        positional: &["Image"],
        mandatory: &["Image", "Name"],
        pipeline: false,
        examples: &[("containerimage create --name demo nanoserver:10.0.14300.1010", "Makes the container.")],
        command: command_of::<CreateArgs>,
        run: docker_create,
    },
    CmdletDef {
        name: "Get-Container",
        synopsis: "Lists the containers.",
        description: "",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[("containerimage Get-Container", "Every container.")],
        command: command_of::<GetContainerArgs>,
        run: get_container,
    },
    CmdletDef {
        name: "ps",
        synopsis: "docker ps -a: the containers with docker's columns.",
        description: "Containers here are never running, so ps lists them all, as ps -a does.",
        positional: &[],
        mandatory: &[],
        pipeline: false,
        examples: &[("containerimage ps -a", "Every container.")],
        command: command_of::<PsArgs>,
        run: docker_ps,
    },
    CmdletDef {
        name: "Remove-Container",
        synopsis: "Removes a container and its files.",
        description: "",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: false,
        examples: &[("containerimage Remove-Container demo", "Removes the container demo.")],
        command: command_of::<RemoveContainerArgs>,
        run: remove_container,
    },
    CmdletDef {
        name: "rm",
        synopsis: "docker rm: Remove-Container with docker's arguments (CONTAINER...).",
        description: "",
        positional: &["Container"],
        mandatory: &["Container"],
        pipeline: false,
        examples: &[("containerimage rm demo", "Removes the container.")],
        command: command_of::<RmArgs>,
        run: docker_rm,
    },
    CmdletDef {
        name: "New-ContainerImage",
        synopsis: "Records a container's changes to its image (or a folder's files on top of an image) as a new child image.",
        description: "With -Container: added and changed files, deleted paths and an empty Hives folder; a file whose size and time are unchanged is not read. With -Path and -ParentImage: the folder's files are added below Files. Changes a Windows layer cannot carry (the registry hives under Windows/System32/config, names Windows cannot hold, special files) are refused, naming them. The image is tagged <lower-case Name>:<Version>.",
        positional: &[],
        mandatory: &["Name", "Publisher", "Version"],
        pipeline: false,
        examples: &[
            (
                "containerimage New-ContainerImage -Container demo -Publisher Demo -Name DemoImage -Version 1.0",
                "Makes CN=Demo_DemoImage_1.0.0.0 from the container demo.",
            ),
            (
                "containerimage New-ContainerImage -Path ./app -ParentImage nanoserver:10.0.14300.1010 -Publisher Demo -Name App -Version 1.0",
                "Adds the folder's files as a layer on Nano Server.",
            ),
        ],
        command: command_of::<NewImageArgs>,
        run: new_container_image,
    },
    CmdletDef {
        name: "commit",
        synopsis: "docker commit: New-ContainerImage with docker's arguments (CONTAINER [REPOSITORY[:TAG]]).",
        description: "The image's Name is the repository's last part (the container's name when none is given), its Publisher CN=Local, its Version the tag when the tag is a version, else 1.0.",
        positional: &["Container", "Repository"],
        mandatory: &["Container"],
        pipeline: false,
        examples: &[("containerimage commit demo windowsservercoreiis", "Commits the container as windowsservercoreiis:latest.")],
        command: command_of::<CommitArgs>,
        run: docker_commit,
    },
];

const CONTAINER_COLUMNS: &[&str] = &["Name", "Image", "Created"];

#[derive(clap::Args, Debug)]
pub struct NewContainerArgs {
    /// The image: FullName, Id (or a unique prefix of 4+ hex digits) or repository[:tag].
    #[arg(long)]
    container_image: String,
    /// The container's name.
    #[arg(long)]
    name: String,
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The image: FullName, Id (or a unique prefix of 4+ hex digits) or repository[:tag].
    #[arg(long)]
    image: String,
    /// The container's name.
    #[arg(long)]
    name: String,
}

#[derive(clap::Args, Debug)]
pub struct GetContainerArgs {
    /// Containers whose name matches this pattern (wildcards * and ?).
    #[arg(long)]
    name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// All containers (the only kind there is).
    #[arg(long)]
    all: bool,
    /// Only the names.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct RemoveContainerArgs {
    /// The container's name.
    #[arg(long)]
    name: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Containers.
    #[arg(long)]
    container: Vec<String>,
    /// Accepted for docker's sake: containers here never run.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args, Debug)]
pub struct NewImageArgs {
    /// The container whose changes make the image.
    #[arg(long, conflicts_with_all = ["path", "parent_image"])]
    container: Option<String>,
    /// A folder whose files are added below Files (with -ParentImage).
    #[arg(long, requires = "parent_image")]
    path: Option<PathBuf>,
    /// The image the folder's files go on top of.
    #[arg(long, requires = "path")]
    parent_image: Option<String>,
    /// The new image's name.
    #[arg(long)]
    name: String,
    /// The publisher (Demo is recorded as CN=Demo).
    #[arg(long)]
    publisher: String,
    /// The version (1.0 is recorded as 1.0.0.0).
    #[arg(long)]
    version: String,
}

#[derive(clap::Args, Debug)]
pub struct CommitArgs {
    /// The container.
    #[arg(long)]
    container: String,
    /// repository[:tag] for the new image.
    #[arg(long)]
    repository: Option<String>,
}

/// A container as the cmdlets show it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerObject {
    name: String,
    image: String,
    image_id: String,
    path: String,
    created: String,
}

fn container_object(
    home: &containerimage_provider::config::Home,
    c: ContainerRecord,
) -> ContainerObject {
    ContainerObject {
        path: home
            .root()
            .join(container::CONTAINERS_DIR)
            .join(&c.name)
            .join("Files")
            .display()
            .to_string(),
        name: c.name,
        image: c.image,
        image_id: c.image_id,
        created: c.created,
    }
}

fn create_container(ctx: &mut Ctx, image: &str, name: &str) -> Result<ContainerRecord, CmdError> {
    let store = open_store(ctx)?;
    let (record, _) = container::create(&store, image, name, ctx.reporter())
        .map_err(|e| CmdError::from(e).context(format!("cannot make the container {name}")))?;
    Ok(record)
}

fn new_container(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: NewContainerArgs = parse(m)?;
    let record = create_container(ctx, &args.container_image, &args.name)?;
    let home = ctx.home()?;
    ctx.emit(&container_object(&home, record), CONTAINER_COLUMNS)
}

fn docker_create(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: CreateArgs = parse(m)?;
    let record = create_container(ctx, &args.image, &args.name)?;
    print_line(&record.name)
}

fn print_line(line: &str) -> CmdResult {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}")
        .map_err(|e| CmdError::from(e).context("cannot write to standard output"))
}

fn get_container(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: GetContainerArgs = parse(m)?;
    let home = ctx.home()?;
    let all = container::list(&home, ctx.reporter())?;
    let pattern = args.name.as_deref();
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|c| pattern.is_none_or(|p| containerimage_provider::wildcard::matches(p, &c.name)))
        .collect();
    if chosen.is_empty() {
        if let Some(p) = pattern.filter(|p| !containerimage_provider::wildcard::has_wildcards(p)) {
            return Err(CmdError::failed(format!("No container is named '{p}'."))
                .hint("Get-Container lists the containers."));
        }
    }
    for c in chosen {
        ctx.emit(&container_object(&home, c), CONTAINER_COLUMNS)?;
    }
    Ok(())
}

fn docker_ps(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: PsArgs = parse(m)?;
    let _ = args.all;
    let home = ctx.home()?;
    let all = container::list(&home, ctx.reporter())?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let write = |out: &mut std::io::StdoutLock<'_>, line: String| {
        writeln!(out, "{line}")
            .map_err(|e| CmdError::from(e).context("cannot write to standard output"))
    };
    if args.quiet {
        for c in all {
            write(&mut out, c.name)?;
        }
        return Ok(());
    }
    let rows: Vec<[String; 3]> = all
        .into_iter()
        .map(|c| [c.name, c.image, c.created])
        .collect();
    let header = ["NAMES", "IMAGE", "CREATED"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 3]| {
        format!(
            "{:<w0$}   {:<w1$}   {}",
            cells[0],
            cells[1],
            cells[2],
            w0 = widths[0],
            w1 = widths[1]
        )
    };
    write(&mut out, line(header))?;
    for r in &rows {
        write(&mut out, line([&r[0], &r[1], &r[2]]))?;
    }
    Ok(())
}

fn remove_containers(ctx: &mut Ctx, names: &[String]) -> Result<Vec<String>, CmdError> {
    let store = open_store(ctx)?;
    let mut removed = Vec::new();
    for name in names {
        match container::remove(&store, name, ctx.reporter()) {
            Ok(()) => removed.push(name.clone()),
            Err(e) => ctx.report(CmdError::from(e).context(format!("cannot remove {name}"))),
        }
    }
    Ok(removed)
}

fn remove_container(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: RemoveContainerArgs = parse(m)?;
    remove_containers(ctx, &args.name)?;
    Ok(())
}

fn docker_rm(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: RmArgs = parse(m)?;
    let _ = args.force;
    for name in remove_containers(ctx, &args.container)? {
        print_line(&name)?;
    }
    Ok(())
}

fn commit(
    ctx: &mut Ctx,
    source: CommitSource<'_>,
    names: CommitNames,
) -> Result<containerimage_provider::store::ImageRecord, CmdError> {
    containerimage_provider::names::check_name(&names.name)?;
    containerimage_provider::names::check_publisher(&names.publisher)?;
    let store = open_store(ctx)?;
    container::commit(&store, source, names, ctx.reporter())
        .map_err(|e| CmdError::from(e).context("cannot make the image"))
}

fn new_container_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: NewImageArgs = parse(m)?;
    let version = version_param("Version", Some(&args.version))?
        .ok_or_else(|| CmdError::usage("-Version is required"))?;
    let names = CommitNames {
        name: args.name.clone(),
        publisher: normalize_publisher(Some(&args.publisher)),
        version,
        tags: None,
    };
    let source = match (&args.container, &args.path, &args.parent_image) {
        (Some(c), None, None) => CommitSource::Container(c),
        (None, Some(path), Some(parent)) => CommitSource::Folder { path, parent },
        _ => {
            return Err(CmdError::usage(
                "give -Container <name>, or -Path <folder> with -ParentImage <image>",
            ))
        }
    };
    let record = commit(ctx, source, names)?;
    let store = open_store(ctx)?;
    let listing = store.listing(ctx.reporter())?;
    emit_image(ctx, &store, &record, &listing)
}

fn docker_commit(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: CommitArgs = parse(m)?;
    let tag = args.repository.as_deref().map(Tag::parse).transpose()?;
    let name = match &tag {
        Some(t) => t
            .repository
            .rsplit('/')
            .next()
            .unwrap_or(&t.repository)
            .to_string(),
        None => args.container.clone(),
    };
    let version = tag
        .as_ref()
        .and_then(|t| t.tag.parse::<Version>().ok())
        .unwrap_or_else(|| Version::from_parts([1, 0, 0, 0]));
    let names = CommitNames {
        name,
        publisher: "CN=Local".into(),
        version,
        tags: tag.map(|t| vec![t]),
    };
    let record = commit(ctx, CommitSource::Container(&args.container), names)?;
    print_line(&format!("sha256:{}", record.id))
}
