//! `containerimage`: the command line of the ContainerImage provider.
//!
//! `containerimage <Cmdlet-Name> [parameters]`, or the binary called through
//! a link named like a cmdlet (`Find-ContainerImage -Name x`).

#[cfg(test)]
mod advice_tests;
mod args;
mod cmdlet;
mod container_cmds;
mod find;
mod help;
mod image_cmds;
mod output;
mod progress;
mod provider_cmds;
mod registry_cmds;
mod save;
mod signing;
mod store_cmds;
mod store_install;
mod wim_cmds;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::Path;

use clap::{Arg, ArgAction, Command};

use crate::cmdlet::{CmdError, CmdletDef, Ctx};
use crate::output::{Output, OutputFormat};
use crate::progress::CliReporter;

/// Every cmdlet, by family.
pub fn all_cmdlets() -> impl Iterator<Item = &'static CmdletDef> {
    provider_cmds::CMDLETS
        .iter()
        .chain(find::CMDLETS)
        .chain(save::CMDLETS)
        .chain(store_install::CMDLETS)
        .chain(store_cmds::CMDLETS)
        .chain(image_cmds::CMDLETS)
        .chain(container_cmds::CMDLETS)
        .chain(registry_cmds::CMDLETS)
        .chain(wim_cmds::CMDLETS)
        .chain(help::CMDLETS)
}

/// Finds a cmdlet by name, ignoring case.
pub fn lookup(name: &str) -> Option<&'static CmdletDef> {
    all_cmdlets().find(|c| c.name.eq_ignore_ascii_case(name))
}

fn main() {
    // A panic is a bug, never the user's fault: say so briefly, without a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("containerimage: internal error{at}: {what}\nThis is a bug in containerimage; please report it.");
    }));
    // Before any thread starts: growing the table later makes a thread wait.
    containerimage_provider::fsutil::reserve_descriptors(containerimage_provider::wim::DESCRIPTORS);
    // Arguments keep their bytes: a file name that is not UTF-8 can be named.
    let argv: Vec<OsString> = std::env::args_os().collect();
    let code = run(&argv);
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// Runs a command line and returns the exit status.
fn run(argv: &[OsString]) -> i32 {
    let invoked = argv
        .first()
        .and_then(|a| Path::new(a).file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let word = |i: usize| argv.get(i).map(|a| a.to_string_lossy());
    // Multicall: a link named like a cmdlet runs that cmdlet.
    let (def, rest) = match lookup(&invoked) {
        Some(def) => (def, &argv[1.min(argv.len())..]),
        None => match word(1).as_deref() {
            None | Some("-?" | "-h" | "--help" | "-help" | "/?") => {
                print_overview();
                return if argv.len() > 1 { 0 } else { 2 };
            }
            Some("--list-cmdlets") => {
                // Cmdlet names (Verb-Noun) only: docker's verbs (`images`,
                // `history`) are not linked, as a shell may shadow them.
                all_cmdlets()
                    .filter(|c| c.name.contains('-'))
                    .for_each(|c| println!("{}", c.name));
                return 0;
            }
            Some("--version" | "-Version") => {
                println!("containerimage {}", env!("CARGO_PKG_VERSION"));
                return 0;
            }
            Some(name) => match lookup(name) {
                Some(def) => (def, &argv[2..]),
                None => {
                    eprintln!("{}", unknown_cmdlet(name));
                    return 2;
                }
            },
        },
    };
    run_cmdlet(def, rest)
}

/// Verbs people type for another one: `Remove-ContainerOSImage` means
/// `Uninstall-ContainerOSImage`.
const VERB_SYNONYMS: &[(&str, &str)] = &[
    ("remove", "uninstall"),
    ("delete", "uninstall"),
    ("delete", "remove"),
    ("uninstall", "remove"),
    ("add", "install"),
    ("list", "get"),
    ("show", "get"),
    ("download", "save"),
    ("search", "find"),
    ("import", "install"),
];

/// The cmdlets closest to a mistyped name, best first: the same noun with
/// a verb meaning the same, then the same noun, then by spelling.
pub fn closest_cmdlets(name: &str) -> Vec<&'static str> {
    let lower = name.to_ascii_lowercase();
    let (verb, noun) = lower.split_once('-').unwrap_or(("", lower.as_str()));
    let mut scored: Vec<(f64, &str)> = all_cmdlets()
        .map(|c| {
            let candidate = c.name.to_ascii_lowercase();
            let (c_verb, c_noun) = candidate
                .split_once('-')
                .unwrap_or(("", candidate.as_str()));
            let score = if !noun.is_empty() && c_noun == noun {
                if VERB_SYNONYMS.contains(&(verb, c_verb)) {
                    3.0
                } else {
                    2.0
                }
            } else {
                strsim::jaro_winkler(&candidate, &lower)
            };
            (score, c.name)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .iter()
        .filter(|(s, _)| *s > 0.75)
        .take(3)
        .map(|(_, n)| *n)
        .collect()
}

fn unknown_cmdlet(name: &str) -> String {
    let close = closest_cmdlets(name);
    let mut msg = format!(
        "containerimage: The term '{name}' is not recognized as the name of a cmdlet of containerimage."
    );
    if !close.is_empty() {
        msg.push_str(&format!("\nDid you mean: {}?", close.join(", ")));
    }
    msg.push_str("\nRun 'containerimage -?' to list the cmdlets.");
    msg
}

fn print_overview() {
    let mut s = String::from(
        "containerimage: find, save, install and manage Windows container base OS images.\n\n\
         Usage: containerimage <Cmdlet-Name> [parameters]\n       \
         containerimage Get-Help <Cmdlet-Name>\n\nCmdlets:\n",
    );
    for c in all_cmdlets() {
        s.push_str(&format!("  {:<32} {}\n", c.name, c.synopsis));
    }
    print!("{s}");
}

/// The parameters every cmdlet has.
fn with_common_parameters(cmd: Command) -> Command {
    cmd.arg(
        Arg::new("verbose")
            .long("verbose")
            .action(ArgAction::SetTrue)
            .help("Shows detail: URLs, paths, timings."),
    )
    .arg(
        Arg::new("output-format")
            .long("output-format")
            .value_parser(clap::builder::EnumValueParser::<OutputFormat>::new())
            .ignore_case(true)
            .help("Table, List or Json; default: Table on a terminal, JSON Lines otherwise."),
    )
}

/// The full clap command of a cmdlet (its own and the common parameters).
pub fn full_command(def: &CmdletDef) -> Command {
    with_common_parameters((def.command)())
        .name(def.name)
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
}

fn run_cmdlet(def: &'static CmdletDef, rest: &[OsString]) -> i32 {
    containerimage_provider::store::set_lock_holder(def.name);
    progress::handle_interrupt();
    let cmd = full_command(def);
    let params = args::params_of(&cmd);
    let bound = match args::bind(&params, def.positional, rest) {
        Ok(b) => b,
        Err(e) => return usage_error(def, &e.0),
    };
    if bound.help {
        print!("{}", help::render(def));
        return 0;
    }
    let matches = match cmd.clone().try_get_matches_from(&bound.gnu) {
        Ok(m) => m,
        Err(e) => {
            let mut cmd = cmd;
            cmd.build();
            return usage_error(def, &help::clap_error_text(&e, &cmd));
        }
    };
    let verbose = matches.get_flag("verbose");
    let format = matches
        .get_one::<OutputFormat>("output-format")
        .copied()
        .unwrap_or_else(|| {
            if std::io::stdout().is_terminal() {
                OutputFormat::Table
            } else {
                OutputFormat::Json
            }
        });
    let mut ctx = Ctx::new(def.name, Output::new(format), CliReporter::new(verbose));
    let started = std::time::Instant::now();
    if verbose {
        verbose_where(&ctx);
    }
    let ran = (def.run)(&mut ctx, &matches);
    let result = ctx.finish(ran);
    if verbose {
        let how = if result.is_ok() {
            "completed"
        } else {
            "failed"
        };
        ctx_free_verbose(&format!(
            "{} {how} in {:.3} s",
            def.name,
            started.elapsed().as_secs_f64()
        ));
    }
    match result {
        Ok(()) => 0,
        Err(CmdError::Usage(m)) => usage_error(def, &m),
        Err(CmdError::Reported) => 1,
        Err(e) => {
            print_error(def.name, &e);
            1
        }
    }
}

/// The `-Verbose` lines every cmdlet starts with: where its configuration
/// and store are, and why there.
fn verbose_where(ctx: &Ctx) {
    use containerimage_provider::config::HOME_VAR;
    use containerimage_provider::progress::Reporter;
    let Ok(home) = ctx.home() else { return };
    let why = if std::env::var_os(HOME_VAR).is_some_and(|v| !v.is_empty()) {
        format!("from {HOME_VAR}")
    } else {
        format!("the default; set {HOME_VAR} to use another")
    };
    let r = ctx.reporter();
    r.verbose(&format!("home folder {} ({why})", home.root().display()));
    if let Ok(config) = home.load() {
        r.verbose(&format!(
            "image store {}; {} package source(s) registered",
            home.store_path(&config).display(),
            config.sources.len()
        ));
    }
}

/// A `-Verbose` line printed after the cmdlet's context is gone.
fn ctx_free_verbose(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "VERBOSE: {text}");
}

fn usage_error(def: &CmdletDef, message: &str) -> i32 {
    eprintln!(
        "{}: {message}\nRun 'containerimage Get-Help {}' for the syntax.",
        def.name, def.name
    );
    2
}

/// Prints an error as the cmdlet, what failed, why and what to do.
pub fn print_error(cmdlet: &str, err: &CmdError) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{cmdlet}: {err}");
}
