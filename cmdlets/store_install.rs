//! The bodies of `Install-ContainerOSImage`, `Install-ContainerImage` and
//! `Install-Package` (their parameters and help are in `store_cmds.rs`).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use clap::ArgMatches;
use containerimage_provider::config::SourceConfig;
use containerimage_provider::download::Downloader;
use containerimage_provider::download::Obtained;
use containerimage_provider::feed::FeedEntry;
use containerimage_provider::install::{
    fetch_for_install, install_fetched, install_os_image, plan_os_image, OsImageRequest,
};
use containerimage_provider::progress::downloaded_line;
use containerimage_provider::query::{self, Query};
use containerimage_provider::source::{self, FeedClient};
use containerimage_provider::store::{full_name, normalize_publisher, Store, StoreError};

use crate::cmdlet::{parse, property, CmdError, CmdResult, Ctx};
use crate::find::{build_query, check_provider_name, chosen_sources, version_param};
use crate::store_cmds::{
    image_object, InstallArgs, InstallOsImageArgs, InstallPackageArgs, IMAGE_COLUMNS,
};

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
    let client = FeedClient::default();

    // What to install: the names given, or the objects piped in.
    let mut searches: Vec<(Vec<SourceConfig>, Query)> = Vec::new();
    if args.name.is_empty() {
        for object in ctx.pipeline_input()? {
            let (Some(name), Some(version)) =
                (property(&object, "Name"), property(&object, "Version"))
            else {
                return Err(CmdError::usage(
                    "the objects on standard input need Name and Version; pipe Find-ContainerImage into this cmdlet",
                ));
            };
            let version = version_param("Version", Some(version))?;
            let sources: Vec<String> = property(&object, "Source")
                .map(str::to_string)
                .into_iter()
                .collect();
            let query = Query::new(vec![name.to_string()], None, None, version, false)
                .map_err(|e| CmdError::usage(e.to_string()))?;
            searches.push((source::select(&config, &sources)?, query));
        }
        if searches.is_empty() {
            if ctx.empty_pipe() {
                return Ok(());
            }
            return Err(CmdError::usage(
                "give -Name, or pipe Find-ContainerImage objects into this cmdlet",
            ));
        }
    } else {
        let query = build_query(&args.name, &args.versions, false)?;
        searches.push((chosen_sources(&config, &args.source)?, query));
    }

    let mut entries: Vec<FeedEntry> = Vec::new();
    for (sources, query) in &searches {
        let mut found = query::find(sources, query, &client, ctx.reporter());
        crate::find::report_unverified(ctx, std::mem::take(&mut found.unverified_sources));
        for message in found.no_match_messages() {
            ctx.report(CmdError::failed(message));
        }
        for entry in found.entries {
            if !entries
                .iter()
                .any(|e| e.name.eq_ignore_ascii_case(&entry.name) && e.version == entry.version)
            {
                entries.push(entry);
            }
        }
    }
    if entries.is_empty() {
        return Ok(());
    }

    if args.what_if {
        for e in &entries {
            ctx.what_if(
                "Install",
                &format!("{} {} from {}", e.name, e.version, e.source),
            );
        }
        return Ok(());
    }

    let store = Store::open(&home, ctx.reporter())?;
    // Untrusted sources: ask on the terminal, refuse without one; images
    // already installed are reported first, so nobody is asked for nothing.
    let entries = if args.force {
        entries
    } else {
        let installed = store.images(ctx.reporter())?;
        let mut fresh = Vec::new();
        for e in entries {
            let name = full_name(
                &normalize_publisher(e.publisher.as_deref()),
                &e.name,
                &e.version,
            );
            if installed
                .iter()
                .any(|r| r.full_name.eq_ignore_ascii_case(&name))
            {
                ctx.report(CmdError::from(StoreError::AlreadyInstalled {
                    full_name: name,
                }));
            } else {
                fresh.push(e);
            }
        }
        approve_untrusted(ctx, &config.sources, fresh)?
    };

    let downloader = Downloader::from_env(args.proxy.as_deref())?;
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
        match install_fetched(&mut lock, fetched, args.force, ctx.reporter()) {
            Ok(record) => objects.push(image_object(&store, &record, lock.tags())),
            Err(e) => ctx.report(CmdError::from(e).context(what())),
        }
    }
    for object in &objects {
        ctx.emit(object, IMAGE_COLUMNS)?;
    }
    Ok(())
}

/// Keeps the entries from trusted sources and those the user approves.
fn approve_untrusted(
    ctx: &mut Ctx,
    registered: &[SourceConfig],
    entries: Vec<FeedEntry>,
) -> Result<Vec<FeedEntry>, CmdError> {
    let is_trusted = |source: &str| {
        registered
            .iter()
            .any(|s| s.name.eq_ignore_ascii_case(source) && s.trusted)
    };
    let mut answer_all: Option<bool> = None;
    let mut tty: Option<std::fs::File> = None;
    let mut kept = Vec::new();
    for entry in entries {
        if is_trusted(&entry.source) {
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
