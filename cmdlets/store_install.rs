//! `Install-ContainerOSImage`, `Install-ContainerImage` and `Install-Package`:
//! their parameters, help and bodies. The install itself (which entries,
//! the trust policy, what is already installed) is decided in the provider;
//! this module parses, asks on the terminal, calls and prints.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use clap::ArgMatches;
use containerimage_provider::download::Downloader;
use containerimage_provider::download::Obtained;
use containerimage_provider::feed::FeedEntry;
use containerimage_provider::install::{
    fetch_for_install, find_candidates, install_fetched, install_os_image, plan_os_image, screen,
    OsImageRequest, Trust, Wanted,
};
use containerimage_provider::pipeline::PipedImage;
use containerimage_provider::progress::downloaded_line;
use containerimage_provider::query::Query;
use containerimage_provider::source::{self, FeedClient};
use containerimage_provider::store::Store;

use crate::cmdlet::{command_of, parse, CmdError, CmdResult, CmdletDef, Ctx};
use crate::find::{build_query, check_provider_name, chosen_sources, version_param, ImageChoice};
use crate::store_cmds::{image_object, IMAGE_COLUMNS};

#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    #[command(flatten)]
    pub images: ImageChoice,
}

#[derive(clap::Args, Debug)]
pub struct InstallPackageArgs {
    #[command(flatten)]
    pub install: InstallArgs,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct InstallOsImageArgs {
    /// The .wim file to import.
    #[arg(long)]
    pub wim_path: std::path::PathBuf,
    /// Reinstall when already installed.
    #[arg(long)]
    pub force: bool,
    /// The image's name (default: from the file name).
    #[arg(long)]
    pub name: Option<String>,
    /// The version to record (default: from the .wim's XML, else the file name).
    #[arg(long)]
    pub version: Option<String>,
    /// The publisher, e.g. CN=Microsoft (the default).
    #[arg(long)]
    pub publisher: Option<String>,
    /// Show what would be installed, change nothing.
    #[arg(long)]
    pub what_if: bool,
}

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Install-ContainerImage",
        synopsis: "Finds, downloads, verifies and installs images from the registered sources.",
        description: "Installing from an untrusted source asks first on a terminal; without one it needs -Force.",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: true,
        examples: &[
            ("containerimage Install-ContainerImage -Name NanoServer", "Installs the newest Nano Server."),
            (
                "containerimage Find-ContainerImage '*nano*' | containerimage Install-ContainerImage",
                "Installs what Find found.",
            ),
        ],
        command: command_of::<InstallArgs>,
        run: install_container_image,
    },
    CmdletDef {
        name: "Install-Package",
        synopsis: "Install-ContainerImage under OneGet's generic name (-ProviderName ContainerImage).",
        description: "",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: true,
        examples: &[("containerimage Install-Package -ProviderName ContainerImage -Name NanoServer", "Installs it.")],
        command: command_of::<InstallPackageArgs>,
        run: install_package,
    },
    CmdletDef {
        name: "Install-ContainerOSImage",
        synopsis: "Imports a .wim file into the image store (offline hosts).",
        description: "Name and version come from the file name and the .wim's XML unless given.",
        positional: &["WimPath"],
        mandatory: &["WimPath"],
        pipeline: false,
        examples: &[
            ("containerimage Install-ContainerOSImage -WimPath /media/NanoServer.wim", "Imports the file."),
            (
                "containerimage Install-ContainerOSImage ./base.wim -Name Base -Version 1.0 -Publisher Demo",
                "Imports it as CN=Demo_Base_1.0.0.0.",
            ),
        ],
        command: command_of::<InstallOsImageArgs>,
        run: install_container_os_image,
    },
];

pub fn install_container_os_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: InstallOsImageArgs = parse(m)?;
    let request = OsImageRequest {
        wim_path: PathBuf::from(&args.wim_path),
        name: args.name,
        version: version_param("Version", args.version.as_deref())?,
        publisher: args.publisher,
        force: args.force,
    };
    let context = || format!("cannot install {}", args.wim_path.display());
    let not_a_file = || {
        std::fs::metadata(&args.wim_path)
            .is_ok_and(|m| !m.is_file())
            .then_some("give the path of a .wim file with -WimPath")
    };
    let add_hint = |e: CmdError| match not_a_file() {
        Some(h) => e.hint(h),
        None => e,
    };
    if args.what_if {
        let (_, planned) =
            plan_os_image(&request).map_err(|e| add_hint(CmdError::from(e).context(context())))?;
        ctx.what_if("Install", &planned.full_name);
        return Ok(());
    }
    let home = ctx.home()?;
    let store = Store::open(&home, ctx.reporter())?;
    let mut lock = store.lock(ctx.reporter())?;
    let record = install_os_image(&mut lock, &request, ctx.reporter())
        .map_err(|e| add_hint(CmdError::from(e).context(context())))?;
    let object = image_object(&store, &record, lock.tags());
    drop(lock);
    ctx.emit(&object, IMAGE_COLUMNS)
}

pub fn install_package(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: InstallPackageArgs = parse(m)?;
    check_provider_name(args.provider_name.as_deref())?;
    install(ctx, args.install)
}

pub fn install_container_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: InstallArgs = parse(m)?;
    install(ctx, args)
}

/// Install-ContainerImage: find → trust check → download → install.
fn install(ctx: &mut Ctx, args: InstallArgs) -> CmdResult {
    let home = ctx.home()?;
    let config = home.load()?;

    // What to install: the names given, or the objects piped in.
    let mut wanted: Vec<Wanted> = Vec::new();
    if args.images.name.is_empty() {
        for object in ctx.pipeline_input()? {
            let piped = PipedImage::from_object(&object)
                .and_then(|p| p.reference())
                .map_err(|e| {
                    CmdError::usage(format!(
                        "an object on standard input cannot be installed: {e}; pipe Find-ContainerImage into this cmdlet"
                    ))
                })?;
            let query = Query::new(vec![piped.name], None, None, Some(piped.version), false)
                .map_err(|e| CmdError::usage(e.to_string()))?;
            let sources: Vec<String> = piped.source.into_iter().collect();
            wanted.push(Wanted {
                sources: source::select(&config, &sources)?,
                query,
            });
        }
        if wanted.is_empty() {
            if ctx.empty_pipe() {
                return Ok(());
            }
            return Err(CmdError::usage(
                "give -Name, or pipe Find-ContainerImage objects into this cmdlet",
            ));
        }
    } else {
        wanted.push(Wanted {
            sources: chosen_sources(&config, &args.images.source)?,
            query: build_query(&args.images.name, &args.images.versions, false)?,
        });
    }

    let found = find_candidates(&wanted, &FeedClient::default(), ctx.reporter());
    crate::find::report_unverified(ctx, found.unverified);
    for message in found.no_match {
        ctx.report(CmdError::failed(message));
    }
    if found.entries.is_empty() {
        return Ok(());
    }

    if args.images.what_if {
        for e in &found.entries {
            ctx.what_if(
                "Install",
                &format!("{} {} from {}", e.name, e.version, e.source),
            );
        }
        return Ok(());
    }

    let store = Store::open(&home, ctx.reporter())?;
    // Images already installed are reported first, so nobody is asked for nothing.
    let screened = screen(
        &store,
        &config.sources,
        found.entries,
        args.images.force,
        ctx.reporter(),
    )?;
    for e in screened.already_installed {
        ctx.report(CmdError::from(e));
    }
    let entries = approve_untrusted(ctx, screened.entries)?;

    let downloader = Downloader::from_env(args.images.proxy.as_deref())?;
    let mut objects = Vec::new();
    for entry in &entries {
        let what = || format!("cannot install {} {}", entry.name, entry.version);
        // Downloaded without the store's lock; locked only to publish.
        let fetched = match fetch_for_install(&store, entry, &downloader, ctx.reporter()) {
            Ok(f) => f,
            Err(e) => {
                ctx.report(CmdError::from(e).context(what()));
                continue;
            }
        };
        if fetched.outcome.obtained != Obtained::AlreadyPresent {
            ctx.reporter()
                .line(&downloaded_line(fetched.outcome.elapsed));
        }
        let mut lock = match store.lock(ctx.reporter()) {
            Ok(l) => l,
            Err(e) => {
                ctx.report(CmdError::from(e).context(what()));
                continue;
            }
        };
        match install_fetched(&mut lock, fetched, args.images.force, ctx.reporter()) {
            Ok(record) => objects.push(image_object(&store, &record, lock.tags())),
            Err(e) => ctx.report(CmdError::from(e).context(what())),
        }
    }
    for object in &objects {
        ctx.emit(object, IMAGE_COLUMNS)?;
    }
    Ok(())
}

/// Keeps the entries the trust policy allows and those the user approves
/// on the terminal; without one, an untrusted entry is refused.
fn approve_untrusted(
    ctx: &mut Ctx,
    entries: Vec<(FeedEntry, Trust)>,
) -> Result<Vec<FeedEntry>, CmdError> {
    let mut answer_all: Option<bool> = None;
    let mut tty: Option<std::fs::File> = None;
    let mut kept = Vec::new();
    for (entry, trust) in entries {
        if trust == Trust::Trusted {
            kept.push(entry);
            continue;
        }
        let yes = match answer_all {
            Some(all) => all,
            None => {
                if tty.is_none() {
                    tty = std::fs::File::options()
                        .read(true)
                        .write(true)
                        .open("/dev/tty")
                        .ok();
                }
                let Some(t) = tty.as_mut() else {
                    ctx.report(
                        CmdError::failed(format!(
                            "not installing {} {}: the source '{}' is not trusted and there is no terminal to ask",
                            entry.name, entry.version, entry.source
                        ))
                        .hint(format!(
                            "add -Force, or trust the source with: containerimage Set-PackageSource -Name '{}' -Trusted",
                            entry.source
                        )),
                    );
                    continue;
                };
                match ask(t, &entry)? {
                    Answer::Yes => true,
                    Answer::No => false,
                    Answer::YesToAll => {
                        answer_all = Some(true);
                        true
                    }
                    Answer::NoToAll => {
                        answer_all = Some(false);
                        false
                    }
                }
            }
        };
        if yes {
            kept.push(entry);
        } else {
            ctx.report(CmdError::failed(format!(
                "not installing {} {}: declined",
                entry.name, entry.version
            )));
        }
    }
    Ok(kept)
}

enum Answer {
    Yes,
    YesToAll,
    No,
    NoToAll,
}

/// PowerShell's untrusted-repository question, on the controlling terminal.
fn ask(tty: &mut std::fs::File, entry: &FeedEntry) -> Result<Answer, CmdError> {
    let io = |e: std::io::Error| CmdError::from(e).context("cannot ask on the terminal");
    loop {
        write!(
            tty,
            "\nUntrusted repository\n\
             You are installing the images from an untrusted repository. If you trust this \
             repository, change its IsTrusted value by running Set-PackageSource -Trusted. \
             Are you sure you want to install '{} {}' from '{}'?\n\
             [Y] Yes  [A] Yes to All  [N] No  [L] No to All  (default is \"N\"): ",
            entry.name, entry.version, entry.source
        )
        .map_err(io)?;
        tty.flush().map_err(io)?;
        let mut line = String::new();
        BufReader::new(&*tty).read_line(&mut line).map_err(io)?;
        match line.trim().to_ascii_uppercase().as_str() {
            "Y" => return Ok(Answer::Yes),
            "A" => return Ok(Answer::YesToAll),
            "N" | "" => return Ok(Answer::No),
            "L" => return Ok(Answer::NoToAll),
            _ => {}
        }
    }
}
