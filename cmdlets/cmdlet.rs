//! What every cmdlet is made of, and the context it runs in.
//!
//! # Writing a cmdlet
//!
//! A cmdlet is a clap `Args` struct (its parameters, with GNU long names that
//! the reader maps to PowerShell names: `required_version` is
//! `-RequiredVersion`), a [`CmdletDef`] entry in its family's `CMDLETS` list
//! (name, synopsis, positional order, examples), and a run function:
//!
//! ```ignore
//! #[derive(clap::Args, Debug)]
//! pub struct GetThingArgs {
//!     /// Name pattern (wildcards allowed).
//!     #[arg(long)]
//!     name: Option<String>,
//! }
//!
//! fn get_thing(ctx: &mut Ctx, args: GetThingArgs) -> CmdResult {
//!     let home = ctx.home()?;                      // CONTAINERIMAGE_HOME
//!     for item in provider_call(&home, ctx.reporter())? {   // provider errors convert with `?`
//!         ctx.emit(&item, &["Name", "Version"])?;  // table columns; JSON gets every field
//!     }
//!     Ok(())
//! }
//! ```
//!
//! - Objects are serde structs with `#[serde(rename_all = "PascalCase")]`.
//! - Usage problems: `Err(CmdError::usage("..."))` (exit 2).
//! - An operation that fails: return the error (exit 1), or, when several
//!   items are processed, `ctx.report(err)` for each failure and go on; the
//!   exit status is then 1.
//! - Warnings and verbose lines: `ctx.reporter().warn(..)`, `.verbose(..)`.
//! - `-WhatIf`: `ctx.what_if("Install", "NanoServer 10.0.14300.1010")` prints
//!   the line; the cmdlet then skips the change.
//! - Pipeline input: `ctx.pipeline_input()?` gives the JSON objects on
//!   standard input (empty when it is a terminal).

use std::error::Error as StdError;
use std::fmt;
use std::io::IsTerminal;

use clap::{ArgMatches, Command, FromArgMatches};
use containerimage_provider::config::Home;
use containerimage_provider::pipeline::{self, PipelineError};
use containerimage_provider::progress::Reporter;
use serde::Serialize;

use crate::output::Output;
use crate::progress::CliReporter;

pub type CmdResult = Result<(), CmdError>;

/// Why a cmdlet did not succeed.
pub enum CmdError {
    /// The command line is wrong (exit 2).
    Usage(String),
    /// The operation failed (exit 1).
    Failed(Failure),
    /// Failures were already reported one by one (exit 1).
    Reported,
}

/// An operation that failed: what, why (the cause chain) and what to do.
pub struct Failure {
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

impl CmdError {
    pub fn usage(message: impl Into<String>) -> CmdError {
        CmdError::Usage(message.into())
    }

    pub fn failed(message: impl Into<String>) -> CmdError {
        CmdError::Failed(Failure {
            message: message.into(),
            causes: Vec::new(),
            hint: None,
        })
    }

    /// Adds what the user can do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> CmdError {
        if let CmdError::Failed(f) = &mut self {
            f.hint = Some(hint.into());
        }
        self
    }

    /// Wraps a failure with what was being done: "cannot install X" caused by the original.
    pub fn context(self, message: impl Into<String>) -> CmdError {
        match self {
            CmdError::Failed(mut f) => {
                f.causes
                    .insert(0, std::mem::replace(&mut f.message, message.into()));
                CmdError::Failed(f)
            }
            other => other,
        }
    }
}

impl<E: StdError> From<E> for CmdError {
    fn from(e: E) -> CmdError {
        let chain: Vec<&(dyn StdError + 'static)> =
            containerimage_provider::error_causes(e.source()).collect();
        let denied = chain.iter().any(|s| {
            s.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        });
        let message = e.to_string();
        let causes: Vec<String> = chain.iter().map(|s| s.to_string()).collect();
        let hint = denied.then(|| permission_hint(&message, &causes));
        CmdError::Failed(Failure {
            message,
            causes,
            hint,
        })
    }
}

/// What to do about a permission error: the home folder (configuration,
/// store, locks) is the user's to choose; any other path is theirs to fix.
fn permission_hint(message: &str, causes: &[String]) -> String {
    let home = Home::from_env().ok();
    let store = home
        .as_ref()
        .and_then(|h| h.load().ok().map(|c| h.store_path(&c)));
    let in_home = [home.map(|h| h.root().to_path_buf()), store]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .any(|p| {
            std::iter::once(message)
                .chain(causes.iter().map(String::as_str))
                .any(|t| t.contains(&p))
        });
    if in_home {
        format!(
            "run the command as root (sudo), or set {} to a folder you can write",
            containerimage_provider::config::HOME_VAR
        )
    } else {
        "run the command as root (sudo), or give a path you can write".into()
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdError::Usage(m) => f.write_str(m),
            CmdError::Failed(failure) => {
                f.write_str(&failure.message)?;
                for c in &failure.causes {
                    write!(f, "\n  caused by: {c}")?;
                }
                if let Some(h) = &failure.hint {
                    write!(f, "\n  what to do: {h}")?;
                }
                Ok(())
            }
            CmdError::Reported => f.write_str("one or more operations failed"),
        }
    }
}

impl fmt::Debug for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One cmdlet: its name, help and how to run it.
pub struct CmdletDef {
    pub name: &'static str,
    pub synopsis: &'static str,
    /// Longer description for `Get-Help`.
    pub description: &'static str,
    /// PowerShell names of positional parameters, in position order.
    pub positional: &'static [&'static str],
    /// Parameters PowerShell shows as mandatory in the syntax.
    pub mandatory: &'static [&'static str],
    /// Whether objects can come from the pipeline (standard input).
    pub pipeline: bool,
    /// (command line, what it does)
    pub examples: &'static [(&'static str, &'static str)],
    pub command: fn() -> Command,
    pub run: fn(&mut Ctx, &ArgMatches) -> CmdResult,
}

/// The clap command of an `Args` struct.
pub fn command_of<A: clap::Args>() -> Command {
    A::augment_args(Command::new("cmdlet"))
}

/// Parses matches into the cmdlet's `Args` struct.
pub fn parse<A: FromArgMatches>(m: &ArgMatches) -> Result<A, CmdError> {
    A::from_arg_matches(m).map_err(|e| CmdError::usage(e.to_string()))
}

/// What a running cmdlet can use.
pub struct Ctx {
    pub cmdlet: &'static str,
    out: Output,
    reporter: CliReporter,
    failures: usize,
}

impl Ctx {
    pub fn new(cmdlet: &'static str, out: Output, reporter: CliReporter) -> Ctx {
        Ctx {
            cmdlet,
            out,
            reporter,
            failures: 0,
        }
    }

    /// `CONTAINERIMAGE_HOME` (or the platform default).
    pub fn home(&self) -> Result<Home, CmdError> {
        Home::from_env().map_err(CmdError::from)
    }

    pub fn reporter(&self) -> &CliReporter {
        &self.reporter
    }

    pub fn verbose(&self) -> bool {
        self.reporter.is_verbose()
    }

    /// The format objects are written in.
    pub fn output_format(&self) -> crate::output::OutputFormat {
        self.out.format()
    }

    /// Writes one object to standard output (see [`Output::emit`]).
    pub fn emit<T: Serialize>(&mut self, object: &T, columns: &[&'static str]) -> CmdResult {
        self.out
            .emit(object, columns)
            .map_err(|e| CmdError::from(e).context("cannot write to standard output"))
    }

    /// Prints the `-WhatIf` line for an operation on a target.
    pub fn what_if(&self, operation: &str, target: &str) {
        self.reporter.line(&format!(
            "What if: Performing the operation \"{operation}\" on target \"{target}\"."
        ));
    }

    /// Reports one failure now and goes on; the cmdlet will exit 1.
    pub fn report(&mut self, err: CmdError) {
        self.failures += 1;
        crate::print_error(self.cmdlet, &err);
    }

    /// Whether an empty pipeline is what came in: standard input is not a
    /// terminal, so nothing piped in means nothing to do (as in PowerShell),
    /// not a missing parameter. Says so with -Verbose.
    pub fn empty_pipe(&self) -> bool {
        let piped = !std::io::stdin().is_terminal();
        if piped {
            self.reporter
                .verbose("no objects on standard input and no names given: nothing to do");
        }
        piped
    }

    /// Whether [`Ctx::report`] was called.
    pub fn has_failures(&self) -> bool {
        self.failures > 0
    }

    /// The objects piped in on standard input as JSON Lines, or none when
    /// standard input is a terminal. The bounds and errors are those of
    /// [`containerimage_provider::pipeline`].
    pub fn pipeline_input(&self) -> Result<Vec<serde_json::Value>, CmdError> {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return Ok(Vec::new());
        }
        let objects = pipeline::read_all(stdin.lock()).map_err(|e| match e {
            PipelineError::Read { .. } => CmdError::from(e),
            other => CmdError::usage(other.to_string()),
        })?;
        Ok(objects.into_iter().map(serde_json::Value::Object).collect())
    }

    pub(crate) fn finish(mut self, result: CmdResult) -> CmdResult {
        if let Err(e) = self.out.finish() {
            return Err(CmdError::from(e).context("cannot write to standard output"));
        }
        match result {
            Ok(()) if self.failures > 0 => Err(CmdError::Reported),
            other => other,
        }
    }
}

/// Reads a string property of a pipeline object (`Name`, `Version`, …).
#[allow(dead_code)] // used by the pipeline cmdlets as they land
pub fn property<'v>(object: &'v serde_json::Value, name: &str) -> Option<&'v str> {
    object.get(name).and_then(|v| v.as_str())
}
