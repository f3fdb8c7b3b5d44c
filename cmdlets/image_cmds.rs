//! Tags and history, and docker's image verbs over the store:
//! `Add-ContainerImageTag` [`tag`], `Get-ContainerImageHistory` [`history`],
//! `images` (`Get-ContainerImage` with docker's columns) and `rmi`
//! (`Remove-ContainerImage` by reference, untagging first as docker does).
//!
//! The docker verbs print docker's plain text (aligned columns, `-q` for
//! bare IDs), which scripts written for docker parse; the cmdlets write
//! objects like every other cmdlet.

use std::io::Write;

use clap::ArgMatches;
use containerimage_provider::export::{export, Format};
use containerimage_provider::import::import;
use containerimage_provider::oci::spec::Compression;
use containerimage_provider::store::{ImageRecord, Listing, Tag};
use serde::Serialize;

use crate::cmdlet::{command_of, parse, CmdError, CmdResult, CmdletDef, Ctx};
use crate::store_cmds::{image_object, open_store, IMAGE_COLUMNS};

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Export-ContainerImage",
        synopsis: "Writes installed images (and their parents) as an OCI archive docker load, containerd and skopeo read, or an OCI layout folder.",
        description: "Each store image is one Windows layer (gzip by default, on all cores). The archive also holds Docker's manifest.json. The same image exported twice gives the same digests.",
        positional: &["Image"],
        mandatory: &["Image", "Path"],
        pipeline: false,
        examples: &[
            ("containerimage Export-ContainerImage nanoserver:10.0.14300.1010 -Path nano.tar", "An archive for docker load."),
            (
                "containerimage Export-ContainerImage nanoserver:10.0.14300.1010 -Path ./layout -Format OciDirectory -Compression Zstd",
                "An OCI layout folder with zstd layers.",
            ),
        ],
        command: command_of::<ExportArgs>,
        run: export_images,
    },
    CmdletDef {
        name: "save",
        synopsis: "docker save: Export-ContainerImage with docker's arguments (-o FILE IMAGE...).",
        description: "",
        positional: &["Image"],
        mandatory: &["Image", "Output"],
        pipeline: false,
        examples: &[("containerimage save -o nano.tar nanoserver:10.0.14300.1010", "Writes the archive.")],
        command: command_of::<SaveArgs>,
        run: docker_save,
    },
    CmdletDef {
        name: "Add-ContainerImageTag",
        synopsis: "Tags an installed image (repository:tag); a tag names one image, so an existing one moves.",
        description: "The image is named by FullName, by Id or a unique Id prefix of at least 4 hex digits, or by repository[:tag].",
        positional: &["Image", "Tag"],
        mandatory: &["Image", "Tag"],
        pipeline: false,
        examples: &[(
            "containerimage Add-ContainerImageTag windowsservercore:10.0.14300.1000 windowsservercore:latest",
            "Tags the image as windowsservercore:latest, as the seeds' docker tag did.",
        )],
        command: command_of::<TagArgs>,
        run: add_tag,
    },
    CmdletDef {
        name: "Import-ContainerImage",
        synopsis: "Adds the Windows images of an OCI layout, an OCI archive or a docker save archive to the store.",
        description: "Every digest, size and layer digest is checked before anything is installed. An image already in the store is not installed again; its tags are added.",
        positional: &["Path"],
        mandatory: &["Path"],
        pipeline: false,
        examples: &[("containerimage Import-ContainerImage nano.tar", "Installs the images of the archive.")],
        command: command_of::<ImportArgs>,
        run: import_images,
    },
    CmdletDef {
        name: "load",
        synopsis: "docker load: Import-ContainerImage with docker's arguments (-i FILE).",
        description: "",
        positional: &[],
        mandatory: &["Input"],
        pipeline: false,
        examples: &[("containerimage load -i nano.tar", "Loads the archive.")],
        command: command_of::<LoadArgs>,
        run: docker_load,
    },
    CmdletDef {
        name: "tag",
        synopsis: "docker tag: Add-ContainerImageTag with docker's arguments (SOURCE TARGET).",
        description: "",
        positional: &["Image", "Tag"],
        mandatory: &["Image", "Tag"],
        pipeline: false,
        examples: &[("containerimage tag nanoserver:10.0.14300.1010 nanoserver:latest", "Tags the image.")],
        command: command_of::<TagArgs>,
        run: docker_tag,
    },
    CmdletDef {
        name: "Get-ContainerImageHistory",
        synopsis: "Lists an image and its parents, newest first.",
        description: "",
        positional: &["Image"],
        mandatory: &["Image"],
        pipeline: false,
        examples: &[("containerimage Get-ContainerImageHistory nanoserver:10.0.14300.1010", "Shows the chain.")],
        command: command_of::<HistoryArgs>,
        run: get_history,
    },
    CmdletDef {
        name: "history",
        synopsis: "docker history: the image and its parents with docker's columns.",
        description: "",
        positional: &["Image"],
        mandatory: &["Image"],
        pipeline: false,
        examples: &[("containerimage history nanoserver:10.0.14300.1010", "Shows the chain.")],
        command: command_of::<DockerHistoryArgs>,
        run: docker_history,
    },
    CmdletDef {
        name: "rmi",
        synopsis: "docker rmi: untags an image, and removes it when that was its last tag or it is named by Id.",
        description: "An image other images depend on is never removed; an Id naming an image with several tags needs -f.",
        positional: &["Image"],
        mandatory: &["Image"],
        pipeline: false,
        examples: &[
            ("containerimage rmi nanoserver:latest", "Removes the tag; the image goes with its last tag."),
            ("containerimage rmi -f 3f1c2a4b", "Removes the image with that Id prefix and all its tags."),
        ],
        command: command_of::<RmiArgs>,
        run: docker_rmi,
    },
    CmdletDef {
        name: "images",
        synopsis: "docker images: installed images with docker's columns, a row per tag.",
        description: "Without -a, untagged images that other images build on are not shown.",
        positional: &["Reference"],
        mandatory: &[],
        pipeline: false,
        examples: &[
            ("containerimage images", "REPOSITORY, TAG, IMAGE ID, CREATED and SIZE of every tagged image."),
            ("containerimage images -q", "Only the image IDs."),
        ],
        command: command_of::<ImagesArgs>,
        run: docker_images,
    },
];

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Images: FullName, Id (or a unique prefix of 4+ hex digits) or repository[:tag].
    #[arg(long, required = true)]
    image: Vec<String>,
    /// The archive file (OciArchive) or folder (OciDirectory) to write.
    #[arg(long)]
    path: std::path::PathBuf,
    /// OciArchive (default) or OciDirectory.
    #[arg(long, value_enum, ignore_case = true, default_value = "oci-archive")]
    format: FormatArg,
    /// Gzip (default), Zstd or None.
    #[arg(long, value_enum, ignore_case = true, default_value = "gzip")]
    compression: CompressionArg,
}

#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    /// Images: FullName, Id (or a unique prefix of 4+ hex digits) or repository[:tag].
    #[arg(long, required = true)]
    image: Vec<String>,
    /// The archive to write (docker's -o).
    #[arg(long, alias = "o")]
    output: std::path::PathBuf,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum FormatArg {
    #[value(name = "OciArchive", alias = "oci-archive")]
    OciArchive,
    #[value(name = "OciDirectory", alias = "oci-directory")]
    OciDirectory,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CompressionArg {
    Gzip,
    Zstd,
    None,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Compression {
        match c {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::None => Compression::None,
        }
    }
}

/// Export's object.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExportObject {
    image: String,
    path: String,
    digest: String,
    size: u64,
}

fn export_images(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: ExportArgs = parse(m)?;
    let format = match args.format {
        FormatArg::OciArchive => Format::OciArchive,
        FormatArg::OciDirectory => Format::OciDirectory,
    };
    let store = open_store(ctx)?;
    let exported = export(
        &store,
        &args.image,
        &args.path,
        format,
        args.compression.into(),
        ctx.reporter(),
    )
    .map_err(|e| CmdError::from(e).context(format!("cannot export to {}", args.path.display())))?;
    for e in exported {
        ctx.emit(
            &ExportObject {
                image: e.image,
                path: e.path.display().to_string(),
                digest: e.digest,
                size: e.size,
            },
            &["Image", "Path", "Digest", "Size"],
        )?;
    }
    Ok(())
}

fn docker_save(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: SaveArgs = parse(m)?;
    let store = open_store(ctx)?;
    export(
        &store,
        &args.image,
        &args.output,
        Format::OciArchive,
        Compression::Gzip,
        ctx.reporter(),
    )
    .map_err(|e| {
        CmdError::from(e).context(format!("cannot export to {}", args.output.display()))
    })?;
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// An OCI layout folder, an OCI archive or a docker save archive.
    #[arg(long)]
    path: std::path::PathBuf,
    /// Install again an image that is in the store already.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// The archive to read (docker's -i).
    #[arg(long, alias = "i")]
    input: std::path::PathBuf,
}

fn import_images(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: ImportArgs = parse(m)?;
    let store = open_store(ctx)?;
    let mut lock = store.lock(ctx.reporter())?;
    let added = import(&mut lock, &args.path, args.force, ctx.reporter())
        .map_err(|e| CmdError::from(e).context(format!("cannot import {}", args.path.display())))?;
    let objects: Vec<_> = added
        .iter()
        .map(|r| image_object(&store, r, lock.tags()))
        .collect();
    drop(lock);
    for o in &objects {
        ctx.emit(o, IMAGE_COLUMNS)?;
    }
    Ok(())
}

fn docker_load(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: LoadArgs = parse(m)?;
    let store = open_store(ctx)?;
    let mut lock = store.lock(ctx.reporter())?;
    let added = import(&mut lock, &args.input, false, ctx.reporter())
        .map_err(|e| CmdError::from(e).context(format!("cannot load {}", args.input.display())))?;
    let mut lines = Vec::new();
    for r in &added {
        let tags = lock.tags().of(&r.full_name);
        if tags.is_empty() {
            lines.push(format!("Loaded image ID: sha256:{}", r.id));
        }
        lines.extend(tags.iter().map(|t| format!("Loaded image: {t}")));
    }
    drop(lock);
    print_lines(&lines)
}

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// The image: FullName, Id (or a unique prefix of 4+ hex digits) or repository[:tag].
    #[arg(long)]
    image: String,
    /// The new tag, repository[:tag] (tag latest when left out).
    #[arg(long)]
    tag: String,
}

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// The image: FullName, Id (or a unique prefix of 4+ hex digits) or repository[:tag].
    #[arg(long)]
    image: String,
}

#[derive(clap::Args, Debug)]
pub struct DockerHistoryArgs {
    /// The image: FullName, Id (or a unique prefix of 4+ hex digits) or repository[:tag].
    #[arg(long)]
    image: String,
    /// Only the image IDs.
    #[arg(long)]
    quiet: bool,
    /// Whole IDs.
    #[arg(long)]
    no_trunc: bool,
}

#[derive(clap::Args, Debug)]
pub struct RmiArgs {
    /// Images: FullName, Id (or a unique prefix of 4+ hex digits) or repository[:tag].
    #[arg(long)]
    image: Vec<String>,
    /// Remove an image named by Id even when it has several tags.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args, Debug)]
pub struct ImagesArgs {
    /// Only images of this repository[:tag].
    #[arg(long)]
    reference: Option<String>,
    /// Only the image IDs.
    #[arg(long)]
    quiet: bool,
    /// Whole IDs.
    #[arg(long)]
    no_trunc: bool,
    /// Also untagged images that other images build on.
    #[arg(long)]
    all: bool,
}

fn tag_image(ctx: &mut Ctx, args: &TagArgs) -> Result<(ImageRecord, Listing), CmdError> {
    let tag = Tag::parse(&args.tag)?;
    let store = open_store(ctx)?;
    let mut lock = store.lock(ctx.reporter())?;
    let record = lock.resolve(&args.image)?.clone();
    lock.add_tag(tag, &record.full_name)?;
    let listing = Listing {
        images: lock.images().to_vec(),
        tags: lock.tags().clone(),
    };
    Ok((record, listing))
}

fn add_tag(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: TagArgs = parse(m)?;
    let (record, listing) = tag_image(ctx, &args)?;
    let store = open_store(ctx)?;
    ctx.emit(&image_object(&store, &record, &listing.tags), IMAGE_COLUMNS)
}

fn docker_tag(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: TagArgs = parse(m)?;
    tag_image(ctx, &args).map(|_| ())
}

/// One entry of an image's history.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HistoryObject {
    id: String,
    created: String,
    created_by: String,
    size: u64,
    comment: String,
}

const HISTORY_COLUMNS: &[&str] = &["Id", "Created", "CreatedBy", "Size", "Comment"];

/// The image `reference` names and its parents, newest first.
fn chain(listing: &Listing, reference: &str) -> Result<Vec<HistoryObject>, CmdError> {
    let record = listing.resolve(reference)?;
    Ok(listing
        .chain(record)?
        .into_iter()
        .map(|r| HistoryObject {
            id: r.id.clone(),
            created: r.created.clone(),
            created_by: r.created_by(),
            size: r.size,
            comment: r.full_name.clone(),
        })
        .collect())
}

fn get_history(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: HistoryArgs = parse(m)?;
    let listing = open_store(ctx)?.listing(ctx.reporter())?;
    for entry in chain(&listing, &args.image)? {
        ctx.emit(&entry, HISTORY_COLUMNS)?;
    }
    Ok(())
}

fn docker_history(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: DockerHistoryArgs = parse(m)?;
    let listing = open_store(ctx)?.listing(ctx.reporter())?;
    let now = time::OffsetDateTime::now_utc();
    let entries = chain(&listing, &args.image)?;
    if args.quiet {
        let ids: Vec<String> = entries
            .iter()
            .map(|e| image_id(&e.id, args.no_trunc))
            .collect();
        return print_lines(&ids);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                image_id(&e.id, args.no_trunc),
                ago(&e.created, now),
                e.created_by.clone(),
                human_size(e.size),
                e.comment.clone(),
            ]
        })
        .collect();
    print_columns(
        &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        &rows,
    )
}

fn docker_images(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: ImagesArgs = parse(m)?;
    let filter = match &args.reference {
        Some(r) => Some(parse_filter(r)?),
        None => None,
    };
    let listing = open_store(ctx)?.listing(ctx.reporter())?;
    let now = time::OffsetDateTime::now_utc();
    let mut rows = Vec::new();
    let mut ids = Vec::new();
    for r in &listing.images {
        let tags = listing.tags.of(&r.full_name);
        let is_parent = listing.images.iter().any(|c| {
            c.parent_image
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(&r.full_name))
        });
        let id = image_id(&r.id, args.no_trunc);
        let shown: Vec<(String, String)> = if tags.is_empty() {
            if (is_parent && !args.all) || filter.is_some() {
                continue;
            }
            vec![("<none>".into(), "<none>".into())]
        } else {
            tags.iter()
                .filter(|t| filter.as_ref().is_none_or(|f| f.matches(t)))
                .map(|t| (t.repository.clone(), t.tag.clone()))
                .collect()
        };
        if shown.is_empty() {
            continue;
        }
        if !ids.contains(&id) {
            ids.push(id.clone());
        }
        // As docker's SIZE: the whole image, its parents' layers included.
        let size: u64 = listing
            .chain(r)
            .map(|c| c.iter().map(|i| i.size).sum())
            .unwrap_or(r.size);
        for (repository, tag) in shown {
            rows.push(vec![
                repository,
                tag,
                id.clone(),
                ago(&r.created, now),
                human_size(size),
            ]);
        }
    }
    if args.quiet {
        return print_lines(&ids);
    }
    print_columns(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows)
}

fn docker_rmi(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: RmiArgs = parse(m)?;
    let store = open_store(ctx)?;
    let mut lock = store.lock(ctx.reporter())?;
    let mut said = Vec::new();
    for reference in &args.image {
        let record = match lock.resolve(reference) {
            Ok(r) => r.clone(),
            Err(e) => {
                ctx.report(CmdError::from(e));
                continue;
            }
        };
        let tags = lock.tags().of(&record.full_name);
        let by_tag = Tag::parse(reference)
            .ok()
            .filter(|t| lock.tags().image_of(t) == Some(record.full_name.as_str()));
        if let Some(tag) = &by_tag {
            if tags.len() > 1 {
                match lock.remove_tag(tag) {
                    Ok(_) => said.push(format!("Untagged: {tag}")),
                    Err(e) => ctx.report(CmdError::from(e)),
                }
                continue;
            }
        } else if tags.len() > 1 && !args.force {
            ctx.report(CmdError::failed(format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                reference
            )).hint("name one tag to untag it, or give -f to remove the image and all its tags"));
            continue;
        }
        match lock.remove(&record.full_name, ctx.reporter()) {
            Ok(_) => {
                said.extend(tags.iter().map(|t| format!("Untagged: {t}")));
                said.push(format!("Deleted: sha256:{}", record.id));
                // As docker does: parents left without a tag, a child or a
                // container go too (the lower layers of an imported image).
                let mut parent = record.parent_image.clone();
                while let Some(p) = parent.take() {
                    let Some(up) = lock.find(&p).cloned() else {
                        break;
                    };
                    if !lock.tags().of(&up.full_name).is_empty()
                        || !lock.dependants(&up.full_name).is_empty()
                    {
                        break;
                    }
                    match lock.remove(&up.full_name, ctx.reporter()) {
                        Ok(_) => {
                            said.push(format!("Deleted: sha256:{}", up.id));
                            parent = up.parent_image.clone();
                        }
                        // A container still uses it: it stays.
                        Err(_) => break,
                    }
                }
            }
            Err(e) => ctx.report(CmdError::from(e)),
        }
    }
    drop(lock);
    print_lines(&said)
}

/// `images REPOSITORY` lists every tag of the repository; `REPOSITORY:TAG` one.
struct Filter {
    repository: String,
    tag: Option<String>,
}

impl Filter {
    fn matches(&self, t: &Tag) -> bool {
        t.repository == self.repository && self.tag.as_ref().is_none_or(|want| *want == t.tag)
    }
}

fn parse_filter(text: &str) -> Result<Filter, CmdError> {
    let parsed = Tag::parse(text)?;
    let tag_given = text
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    Ok(Filter {
        repository: parsed.repository,
        tag: tag_given.then_some(parsed.tag),
    })
}

/// Docker's IMAGE ID: the first 12 hex digits, or `sha256:<all>`.
fn image_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        format!("sha256:{id}")
    } else {
        id.chars().take(12).collect()
    }
}

/// Docker's size: three significant digits in decimal units (`260MB`, `1.23GB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 999.5 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = if value >= 99.95 {
        0
    } else if value >= 9.995 {
        1
    } else {
        2
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        while text.ends_with('0') {
            text.pop();
        }
        if text.ends_with('.') {
            text.pop();
        }
    }
    format!("{text}{}", UNITS[unit])
}

/// Docker's CREATED: how long ago, in words.
pub fn ago(created: &str, now: time::OffsetDateTime) -> String {
    let Ok(then) =
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
    else {
        return "N/A".into();
    };
    let secs = (now - then).whole_seconds().max(0);
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match secs {
        0 => "Less than a second ago".into(),
        1..=59 => plural(secs, "second"),
        60..=119 => "About a minute ago".into(),
        120..=3599 => plural(secs / 60, "minute"),
        3600..=7199 => "About an hour ago".into(),
        7200..=172_799 => plural(secs / 3600, "hour"),
        172_800..=1_209_599 => plural(secs / 86_400, "day"),
        1_209_600..=5_183_999 => plural(secs / 604_800, "week"),
        5_184_000..=63_071_999 => plural(secs / 2_592_000, "month"),
        _ => plural(secs / 31_536_000, "year"),
    }
}

fn print_lines(lines: &[String]) -> CmdResult {
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")
            .map_err(|e| CmdError::from(e).context("cannot write to standard output"))?;
    }
    Ok(())
}

/// Columns left-aligned, three spaces apart, as docker lays them out.
fn print_columns(header: &[&str], rows: &[Vec<String>]) -> CmdResult {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            s.push_str(cell);
            if i < last {
                s.push_str(&" ".repeat(w - cell.chars().count() + 3));
            }
        }
        s
    };
    let mut lines = vec![line(header.to_vec())];
    for row in rows {
        lines.push(line(row.iter().map(String::as_str).collect()));
    }
    print_lines(&lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_as_docker_prints_them() {
        assert_eq!(human_size(260_046_848), "260MB");
        assert_eq!(human_size(1_234_567_890), "1.23GB");
        assert_eq!(human_size(11_036), "11kB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(0), "0B");
        let now = time::OffsetDateTime::parse(
            "2026-11-30T12:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .expect("time");
        assert_eq!(ago("2026-11-30T11:58:00Z", now), "2 minutes ago");
        assert_eq!(ago("2026-11-30T11:59:30Z", now), "30 seconds ago");
        assert_eq!(ago("2026-11-16T12:00:00Z", now), "2 weeks ago");
        assert_eq!(ago("garbage", now), "N/A");
    }
}
