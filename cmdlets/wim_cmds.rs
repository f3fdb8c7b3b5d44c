//! Offline `.wim` files, DISM-shaped: `Get-WindowsImage`,
//! `Expand-WindowsImage`, `Test-WindowsImage`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::ArgMatches;
use containerimage_provider::progress::Reporter;
use containerimage_provider::wim::info::arch_name;
use containerimage_provider::wim::{ApplyOptions, ImageInfo, WimFile};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cmdlet::{command_of, parse, CmdError, CmdResult, CmdletDef, Ctx};

/// Which image of a file: by index or by name.
#[derive(clap::Args, Debug, Clone)]
#[group(id = "image", multiple = false)]
pub struct ImageSelector {
    /// The image's index (1-based).
    #[arg(long, value_name = "UInt32")]
    pub index: Option<u32>,
    /// The image's name.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct GetWindowsImageArgs {
    /// The .wim file.
    #[arg(long)]
    pub image_path: std::path::PathBuf,
    #[command(flatten)]
    pub image: ImageSelector,
}

#[derive(clap::Args, Debug)]
pub struct ExpandArgs {
    /// The .wim file.
    #[arg(long)]
    pub image_path: std::path::PathBuf,
    #[command(flatten)]
    pub image: ImageSelector,
    /// The folder to write the image's tree to; created when missing.
    #[arg(long)]
    pub apply_path: std::path::PathBuf,
    /// Check the file's integrity table first.
    #[arg(long)]
    pub check_integrity: bool,
    /// Read back and compare what was written.
    #[arg(long)]
    pub verify: bool,
    /// Where to write the Windows-only metadata (security, attributes, streams, short names).
    #[arg(long)]
    pub metadata_path: Option<std::path::PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct TestWindowsImageArgs {
    /// The .wim file.
    #[arg(long)]
    pub image_path: std::path::PathBuf,
}

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Get-WindowsImage",
        synopsis: "Shows the images in a .wim file.",
        description: "Without -Index or -Name lists every image; with one, shows its details as DISM does.",
        positional: &["ImagePath"],
        mandatory: &["ImagePath"],
        pipeline: false,
        examples: &[
            ("containerimage Get-WindowsImage -ImagePath NanoServer.wim", "Lists the images."),
            ("containerimage Get-WindowsImage -ImagePath NanoServer.wim -Index 1", "Details of image 1."),
        ],
        command: command_of::<GetWindowsImageArgs>,
        run: get_windows_image,
    },
    CmdletDef {
        name: "Expand-WindowsImage",
        synopsis: "Applies an image of a .wim file to a folder.",
        description: "Writes the image's tree (directories, files, hard and symbolic links, timestamps) into -ApplyPath, \
                      verifying every blob's SHA-1. Nothing is written outside -ApplyPath.",
        positional: &[],
        mandatory: &["ImagePath", "ApplyPath"],
        pipeline: false,
        examples: &[(
            "containerimage Expand-WindowsImage -ImagePath NanoServer.wim -Index 1 -ApplyPath /srv/nano",
            "Applies image 1.",
        )],
        command: command_of::<ExpandArgs>,
        run: expand_windows_image,
    },
    CmdletDef {
        name: "Test-WindowsImage",
        synopsis: "Checks a .wim file: integrity table and every blob's SHA-1.",
        description: "",
        positional: &["ImagePath"],
        mandatory: &["ImagePath"],
        pipeline: false,
        examples: &[("containerimage Test-WindowsImage NanoServer.wim", "Checks the file.")],
        command: command_of::<TestWindowsImageArgs>,
        run: test_windows_image,
    },
];

/// One image, as `Get-WindowsImage` shows it without an index.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ImageSummary {
    image_index: u32,
    image_name: String,
    image_description: String,
    image_size: u64,
}

/// One image in detail, as `Get-WindowsImage -Index` shows it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ImageDetail {
    image_path: String,
    image_index: u32,
    image_name: String,
    image_description: String,
    image_size: u64,
    version: Option<String>,
    architecture: Option<String>,
    edition_id: Option<String>,
    installation_type: Option<String>,
    product_type: Option<String>,
    product_name: Option<String>,
    languages: Vec<String>,
    default_language: Option<String>,
    directory_count: Option<u64>,
    file_count: Option<u64>,
    created_time: Option<String>,
    modified_time: Option<String>,
    compression: String,
    chunk_size: u32,
    wim_version: u32,
    wim_flags: u32,
    image_count: u32,
    integrity_table: bool,
}

/// What `Expand-WindowsImage` did.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExpandSummary {
    image_path: String,
    image_index: u32,
    apply_path: String,
    files: u64,
    directories: u64,
    hard_links: u64,
    symbolic_links: u64,
    bytes: u64,
    skipped: Vec<String>,
    not_represented: Vec<String>,
    metadata_path: Option<String>,
    seconds: f64,
}

/// What `Test-WindowsImage` found.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TestResult {
    image_path: String,
    is_valid: bool,
    problems: Vec<String>,
}

/// A FILETIME as an RFC 3339 UTC string.
fn filetime_rfc3339(ft: u64) -> Option<String> {
    let (secs, nanos) = containerimage_provider::wim::filetime::to_unix(ft);
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.replace_nanosecond(nanos).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
}

fn open(path: &Path) -> Result<WimFile, CmdError> {
    WimFile::open(path).map_err(|e| {
        let hint = if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            "give the path of a .wim file"
        } else {
            "check the path; Test-WindowsImage explains what is wrong with a damaged file"
        };
        CmdError::from(e).hint(hint)
    })
}

/// The image chosen by -Index or -Name (index 1-based).
fn select<'a>(wim: &'a WimFile, sel: &ImageSelector) -> Result<Option<&'a ImageInfo>, CmdError> {
    let index = match (&sel.index, &sel.name) {
        (Some(i), _) => *i,
        (None, Some(name)) => wim.index_of(name)?,
        (None, None) => return Ok(None),
    };
    match wim.info().images.iter().find(|i| i.index == index) {
        Some(info) => Ok(Some(info)),
        None => Err(CmdError::failed(format!(
            "{} has no image {index} (it holds {})",
            wim.path().display(),
            wim.image_count()
        ))
        .hint("run Get-WindowsImage -ImagePath FILE to list its images")),
    }
}

fn get_windows_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: GetWindowsImageArgs = parse(m)?;
    let wim = open(&args.image_path)?;
    let Some(image) = select(&wim, &args.image)? else {
        for i in &wim.info().images {
            let row = ImageSummary {
                image_index: i.index,
                image_name: i.name.clone().unwrap_or_default(),
                image_description: i.description.clone().unwrap_or_default(),
                image_size: i.total_bytes.unwrap_or(0),
            };
            ctx.emit(
                &row,
                &["ImageIndex", "ImageName", "ImageDescription", "ImageSize"],
            )?;
        }
        return Ok(());
    };
    let w = image.windows.clone().unwrap_or_default();
    let header = wim.header();
    let detail = ImageDetail {
        image_path: args.image_path.display().to_string(),
        image_index: image.index,
        image_name: image.name.clone().unwrap_or_default(),
        image_description: image.description.clone().unwrap_or_default(),
        image_size: image.total_bytes.unwrap_or(0),
        version: w
            .version
            .map(|v| format!("{}.{}.{}.{}", v.major, v.minor, v.build, v.sp_build)),
        architecture: w.arch.map(|a| arch_name(a).to_string()),
        edition_id: w.edition_id.clone(),
        installation_type: w.installation_type.clone(),
        product_type: w.product_type.clone(),
        product_name: w.product_name.clone(),
        languages: w.languages.clone(),
        default_language: w.default_language.clone(),
        directory_count: image.dir_count,
        file_count: image.file_count,
        created_time: image.creation_time.and_then(filetime_rfc3339),
        modified_time: image.last_modification_time.and_then(filetime_rfc3339),
        compression: wim.compression().to_string(),
        chunk_size: header.chunk_size,
        wim_version: header.version,
        wim_flags: header.flags,
        image_count: header.image_count,
        integrity_table: header.has_integrity_table,
    };
    ctx.emit(
        &detail,
        &[
            "ImageIndex",
            "ImageName",
            "Version",
            "Architecture",
            "Compression",
            "ImageSize",
        ],
    )
}

fn expand_windows_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: ExpandArgs = parse(m)?;
    if args.image.index.is_none() && args.image.name.is_none() {
        return Err(CmdError::usage(
            "Expand-WindowsImage needs -Index or -Name to choose the image",
        ));
    }
    let started = Instant::now();
    let wim = open(&args.image_path)?;
    let index = select(&wim, &args.image)?.map_or(1, |i| i.index);
    let options = ApplyOptions {
        check_integrity: args.check_integrity,
        verify: args.verify,
        metadata_path: args.metadata_path.as_ref().map(PathBuf::from),
        // The same tree as `wimlib-imagex apply`.
        absolute_links: true,
    };
    ctx.reporter().verbose(&format!(
        "Applying image {index} of {} to {}",
        args.image_path.display(),
        args.apply_path.display()
    ));
    let summary = wim
        .apply(index, Path::new(&args.apply_path), &options, ctx.reporter())
        .map_err(|e| {
            CmdError::from(e).context(format!(
                "cannot apply image {index} of {}",
                args.image_path.display()
            ))
        })?;
    let seconds = started.elapsed().as_secs_f64();
    ctx.reporter().verbose(&format!(
        "Applied {} bytes in {seconds:.3} s",
        summary.bytes
    ));
    let out = ExpandSummary {
        image_path: args.image_path.display().to_string(),
        image_index: index,
        apply_path: args.apply_path.display().to_string(),
        files: summary.files,
        directories: summary.directories,
        hard_links: summary.hard_links,
        symbolic_links: summary.symlinks,
        bytes: summary.bytes,
        skipped: summary.skipped,
        not_represented: summary.not_represented,
        metadata_path: args.metadata_path.as_ref().map(|p| p.display().to_string()),
        seconds: (seconds * 1000.0).round() / 1000.0,
    };
    ctx.emit(
        &out,
        &["ImageIndex", "ApplyPath", "Files", "Bytes", "Seconds"],
    )
}

fn test_windows_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: TestWindowsImageArgs = parse(m)?;
    let problems = match WimFile::open(Path::new(&args.image_path)) {
        Ok(wim) => wim.verify(ctx.reporter()),
        Err(e) => vec![containerimage_provider::error_chain(&e)],
    };
    let result = TestResult {
        image_path: args.image_path.display().to_string(),
        is_valid: problems.is_empty(),
        problems,
    };
    ctx.emit(&result, &["ImagePath", "IsValid", "Problems"])?;
    if result.is_valid {
        Ok(())
    } else {
        Err(CmdError::failed(format!(
            "{} is not valid: {} problem(s) found",
            args.image_path.display(),
            result.problems.len()
        )))
    }
}
