//! The PowerShell-style argument reader that stands in front of clap.
//!
//! It binds what a PowerShell user types to a cmdlet's parameters:
//! `-Name value`, `-Name:value`, case-insensitive names, any unambiguous
//! prefix (`-Req` for `-RequiredVersion`), aliases, switches (`-Force`,
//! `-Force:$false`), arrays (`a,b`), positional parameters, and the GNU
//! spellings (`--required-version 1.0`). The result is a plain GNU argument
//! list (`--required-version=1.0`) that clap then turns into typed values.

use std::ffi::{OsStr, OsString};

use clap::{ArgAction, Command};

/// One parameter of a cmdlet, as the reader sees it.
#[derive(Clone, Debug)]
pub struct Param {
    /// PowerShell name, e.g. `RequiredVersion`.
    pub name: String,
    /// GNU long name, e.g. `required-version`.
    pub long: String,
    /// Other accepted names (PowerShell spelling), e.g. `Version`.
    pub aliases: Vec<String>,
    pub kind: ParamKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// `-Force`: present means true; `-Force:$false` means absent.
    Switch,
    /// `-Trusted` / `-Trusted:$false` where "false" must reach the cmdlet.
    TriStateSwitch,
    /// One value.
    Value,
    /// Several values: `a,b` or repeated.
    Array,
}

/// A usage error, worded as PowerShell words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

/// What the reader found on the command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Bound {
    /// The GNU arguments for clap (without the program name). Values keep
    /// their bytes: a file name that is not UTF-8 reaches a path parameter
    /// as it is.
    pub gnu: Vec<OsString>,
    /// `-?` was given: show help instead of running.
    pub help: bool,
    /// PowerShell names of the parameters given (after resolving prefixes).
    pub given: Vec<String>,
}

/// Reads the parameter table of a clap command.
pub fn params_of(cmd: &Command) -> Vec<Param> {
    cmd.get_arguments()
        .filter(|a| a.get_long().is_some())
        .map(|a| {
            let long = a.get_long().unwrap_or_default().to_string();
            let kind = match a.get_action() {
                ArgAction::SetTrue | ArgAction::SetFalse => ParamKind::Switch,
                ArgAction::Append => ParamKind::Array,
                _ if a.get_num_args().is_some_and(|n| n.min_values() == 0) => {
                    ParamKind::TriStateSwitch
                }
                _ => ParamKind::Value,
            };
            let aliases = a
                .get_all_aliases()
                .unwrap_or_default()
                .into_iter()
                .map(pascal_case)
                .collect();
            Param {
                name: pascal_case(&long),
                long,
                aliases,
                kind,
            }
        })
        .collect()
}

/// `required-version` → `RequiredVersion`; `base-uri` → `BaseUri`.
pub fn pascal_case(kebab: &str) -> String {
    kebab
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Finds the parameter `typed` names: exact name or alias first, then a
/// unique prefix. GNU spellings (`required-version`) match the long name.
fn resolve<'p>(params: &'p [Param], typed: &str, gnu: bool) -> Result<&'p Param, UsageError> {
    let lower = typed.to_ascii_lowercase();
    let names = |p: &'p Param| -> Vec<String> {
        let mut v = vec![p.name.to_ascii_lowercase()];
        v.extend(p.aliases.iter().map(|a| a.to_ascii_lowercase()));
        if gnu {
            v.push(p.long.clone());
        }
        v
    };
    if let Some(p) = params.iter().find(|p| names(p).contains(&lower)) {
        return Ok(p);
    }
    let matches: Vec<&Param> = params
        .iter()
        .filter(|p| names(p).iter().any(|n| n.starts_with(&lower)))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let close: Vec<String> = params
                .iter()
                .filter(|p| strsim::jaro_winkler(&p.name.to_ascii_lowercase(), &lower) > 0.8)
                .map(|p| format!("-{}", p.name))
                .collect();
            let mut msg = format!("A parameter cannot be found that matches parameter name '{typed}'.");
            if !close.is_empty() {
                msg.push_str(&format!(" Did you mean {}?", close.join(", ")));
            }
            Err(UsageError(msg))
        }
        many => Err(UsageError(format!(
            "Parameter cannot be processed because the parameter name '{typed}' is ambiguous. Possible matches include: {}.",
            many.iter().map(|p| format!("-{}", p.name)).collect::<Vec<_>>().join(" ")
        ))),
    }
}

/// Reads a switch's explicit value (`-Force:$false`, `:true`, `:0`, `:1`).
fn switch_value(name: &str, value: &str) -> Result<bool, UsageError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "$true" | "true" | "1" => Ok(true),
        "$false" | "false" | "0" => Ok(false),
        "" => Err(UsageError(format!(
            "Missing a value for switch parameter '{name}' after ':'. Write -{name}:$true or -{name}:$false \
             (in bash, quote it: '-{name}:$false' or use -{name}:false)."
        ))),
        other => Err(UsageError(format!(
            "Cannot process argument transformation on parameter '{name}'. Cannot convert value \"{other}\" to type \
             \"System.Management.Automation.SwitchParameter\". Use $true, $false, true, false, 1 or 0."
        ))),
    }
}

/// Looks like a parameter name rather than a value: `-Name`, `--name`, `-?`.
fn is_param_token(tok: &str) -> bool {
    let rest = tok.strip_prefix('-').unwrap_or("");
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    rest == "?" || rest.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

/// `--long=value` for clap, value bytes kept.
fn gnu_arg(long: &str, value: &OsStr) -> OsString {
    let mut a = OsString::from(format!("--{long}="));
    a.push(value);
    a
}

/// The comma-separated pieces of an array value (`a,b`), trimmed, empty
/// pieces left out.
fn array_pieces(value: &OsStr) -> Vec<OsString> {
    if let Some(text) = value.to_str() {
        return text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(OsString::from)
            .collect();
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        value
            .as_bytes()
            .split(|b| *b == b',')
            .map(|piece| piece.trim_ascii())
            .filter(|piece| !piece.is_empty())
            .map(|piece| OsStr::from_bytes(piece).to_os_string())
            .collect()
    }
    #[cfg(not(unix))]
    vec![value.to_os_string()]
}

fn null_or_empty(name: &str) -> UsageError {
    UsageError(format!(
        "Cannot validate argument on parameter '{name}'. The argument is null or empty. Provide an argument that is not null or empty, and then try the command again."
    ))
}

/// Parameters whose values are paths on this system (`Location` and
/// `NewLocation` when they are not URLs).
const PATH_PARAMETERS: &[&str] = &[
    "Path",
    "LiteralPath",
    "Destination",
    "WimPath",
    "ImagePath",
    "ApplyPath",
    "MetadataPath",
    "Output",
    "Input",
    "Location",
    "NewLocation",
];

/// A path in Windows form: a drive letter (`C:`, `C:\…`, `c:/…`), a UNC
/// path (`\\server\share`) or any backslash.
pub fn is_windows_path(value: &OsStr) -> bool {
    let bytes = value.as_encoded_bytes();
    let drive = matches!(bytes, [letter, b':', ..] if letter.is_ascii_alphabetic());
    drive || bytes.contains(&b'\\')
}

/// On Linux and macOS a Windows-form path is refused before anything is
/// created: `C:\images` would otherwise become a file of that name.
fn check_path_value(p: &Param, value: &OsStr) -> Result<(), UsageError> {
    if cfg!(windows) || !PATH_PARAMETERS.contains(&p.name.as_str()) {
        return Ok(());
    }
    let is_url = value.to_str().is_some_and(|t| t.contains("://"));
    if is_url || !is_windows_path(value) {
        return Ok(());
    }
    Err(UsageError(format!(
        "Cannot use '{}' for -{}: it is a Windows path (a drive letter, \\\\server\\share or a backslash), \
         and this system's paths are written with '/'. Use a path of this system, e.g. /srv/images{}.",
        value.to_string_lossy(),
        p.name,
        if p.name == "Destination" || p.name == "WimPath" { "/NanoServer.wim" } else { "" }
    )))
}

/// Binds `args` to `params`; `positional` lists PowerShell names in position order.
pub fn bind(params: &[Param], positional: &[&str], args: &[OsString]) -> Result<Bound, UsageError> {
    let mut out = Bound::default();
    let mut next_position = 0usize;
    let mut only_positional = false;
    let mut i = 0;
    // An empty value never means "everything": `-Name:` or `-Name ''` is an
    // error, as in PowerShell, not an unfiltered listing.
    let push_value = |out: &mut Bound, p: &Param, v: &OsStr| -> Result<(), UsageError> {
        check_path_value(p, v)?;
        if p.kind == ParamKind::Array {
            let pieces = array_pieces(v);
            if pieces.is_empty() {
                return Err(null_or_empty(&p.name));
            }
            for piece in pieces {
                out.gnu.push(gnu_arg(&p.long, &piece));
            }
        } else {
            if v.is_empty() || v.to_str().is_some_and(|t| t.trim().is_empty()) {
                return Err(null_or_empty(&p.name));
            }
            out.gnu.push(gnu_arg(&p.long, v));
        }
        if !out.given.contains(&p.name) {
            out.given.push(p.name.clone());
        }
        Ok(())
    };
    while i < args.len() {
        let tok_os = &args[i];
        i += 1;
        // Parameter names are ASCII; a token that is not UTF-8 is a value.
        let tok = tok_os.to_str().unwrap_or_default();
        if !only_positional && tok == "--" {
            only_positional = true;
            continue;
        }
        if !only_positional && is_param_token(tok) {
            let gnu = tok.starts_with("--");
            let body = tok.trim_start_matches('-');
            let help = body == "?"
                || tok == "-h"
                || tok.eq_ignore_ascii_case("--help")
                || tok.eq_ignore_ascii_case("-help");
            if help {
                out.help = true;
                continue;
            }
            let (typed, inline) = match body.find([':', '=']) {
                Some(at) if gnu || body.as_bytes()[at] == b':' => {
                    (&body[..at], Some(&body[at + 1..]))
                }
                _ => (body, None),
            };
            let p = resolve(params, typed, gnu)?;
            if out.given.contains(&p.name) && p.kind != ParamKind::Array {
                return Err(UsageError(format!(
                    "Cannot bind parameter because parameter '{}' is specified more than once.",
                    p.name
                )));
            }
            match p.kind {
                ParamKind::Switch | ParamKind::TriStateSwitch => {
                    let on = match inline {
                        Some(v) => switch_value(&p.name, v)?,
                        None => true,
                    };
                    if p.kind == ParamKind::TriStateSwitch {
                        out.gnu.push(format!("--{}={on}", p.long).into());
                    } else if on {
                        out.gnu.push(format!("--{}", p.long).into());
                    }
                    out.given.push(p.name.clone());
                }
                ParamKind::Value | ParamKind::Array => {
                    let value = match inline {
                        Some(v) => OsString::from(v),
                        None => match args.get(i) {
                            Some(v) if !v.to_str().is_some_and(is_param_token) => {
                                i += 1;
                                v.clone()
                            }
                            _ => {
                                return Err(UsageError(format!(
                                    "Missing an argument for parameter '{}'. Specify a parameter of type '{}' and try again.",
                                    p.name,
                                    if p.kind == ParamKind::Array { "System.String[]" } else { "System.String" }
                                )))
                            }
                        },
                    };
                    push_value(&mut out, p, &value)?;
                }
            }
            continue;
        }
        // A positional argument: the next positional parameter not yet given by name.
        let target = positional[next_position.min(positional.len())..]
            .iter()
            .enumerate()
            .find(|(_, name)| !out.given.iter().any(|g| g == *name));
        match target {
            Some((offset, name)) => {
                next_position += offset + 1;
                let p = params.iter().find(|p| p.name == *name).ok_or_else(|| {
                    UsageError(format!(
                        "internal: positional parameter {name} is not declared"
                    ))
                })?;
                push_value(&mut out, p, tok_os)?;
            }
            None => {
                return Err(UsageError(format!(
                    "A positional parameter cannot be found that accepts argument '{}'.",
                    tok_os.to_string_lossy()
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn find_like() -> Vec<Param> {
        let cmd = Command::new("Find")
            .arg(Arg::new("name").long("name").action(ArgAction::Append))
            .arg(Arg::new("minimum-version").long("minimum-version"))
            .arg(Arg::new("maximum-version").long("maximum-version"))
            .arg(
                Arg::new("required-version")
                    .long("required-version")
                    .alias("version"),
            )
            .arg(
                Arg::new("all-versions")
                    .long("all-versions")
                    .action(ArgAction::SetTrue),
            )
            .arg(Arg::new("force").long("force").action(ArgAction::SetTrue))
            .arg(
                Arg::new("trusted")
                    .long("trusted")
                    .num_args(0..=1)
                    .require_equals(true),
            )
            .arg(Arg::new("source").long("source").action(ArgAction::Append));
        params_of(&cmd)
    }

    fn ok(args: &[&str]) -> Vec<String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        bind(&find_like(), &["Name", "Source"], &args)
            .unwrap_or_else(|e| panic!("{args:?}: {}", e.0))
            .gnu
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn err(args: &[&str]) -> String {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        match bind(&find_like(), &["Name", "Source"], &args) {
            Ok(b) => panic!("{args:?} should fail, bound {:?}", b.gnu),
            Err(e) => e.0,
        }
    }

    #[test]
    fn binds_powershell_spellings() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["-Name", "nano"], &["--name=nano"]),
            (&["-name", "nano"], &["--name=nano"]),
            (&["-NAME:nano"], &["--name=nano"]),
            (&["-Req", "1.0"], &["--required-version=1.0"]),
            (&["-Version", "1.0"], &["--required-version=1.0"]),
            (&["-Ver", "1.0"], &["--required-version=1.0"]),
            (&["-Name", "a,b"], &["--name=a", "--name=b"]),
            (&["a,b"], &["--name=a", "--name=b"]),
            (&["nano", "feed1"], &["--name=nano", "--source=feed1"]),
            (&["-Name", "x", "feed1"], &["--name=x", "--source=feed1"]),
            (&["-Force"], &["--force"]),
            (&["-Force:$false"], &[]),
            (&["-Force:false"], &[]),
            (&["-Force:0"], &[]),
            (&["-Force:$true"], &["--force"]),
            (&["-Trusted"], &["--trusted=true"]),
            (&["-Trusted:$false"], &["--trusted=false"]),
            (&["--required-version", "2.0"], &["--required-version=2.0"]),
            (&["--required-version=2.0"], &["--required-version=2.0"]),
            (&["--all-versions"], &["--all-versions"]),
            (
                &["-AllVersions", "-Source", "s1"],
                &["--all-versions", "--source=s1"],
            ),
            (&["--", "-odd-name"], &["--name=-odd-name"]),
        ];
        for (args, expected) in cases {
            assert_eq!(
                ok(args),
                expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "args {args:?}"
            );
        }
    }

    #[test]
    fn usage_errors_are_worded_like_powershell() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["-M", "1"],
                "is ambiguous. Possible matches include: -MinimumVersion -MaximumVersion.",
            ),
            (
                &["-Bogus"],
                "A parameter cannot be found that matches parameter name 'Bogus'.",
            ),
            (&["-Name"], "Missing an argument for parameter 'Name'."),
            (&["-Force:"], "Missing a value for switch parameter 'Force'"),
            (&["-Force:maybe"], "Cannot convert value \"maybe\""),
            (
                &["a", "b", "c"],
                "A positional parameter cannot be found that accepts argument 'c'.",
            ),
            (&["-Req", "1", "-Req", "2"], "specified more than once"),
            (&["-Sourc", "x", "-Nme", "y"], "Did you mean -Name?"),
        ];
        for (args, expected) in cases {
            let e = err(args);
            assert!(
                e.contains(expected),
                "args {args:?}: got {e:?}, expected it to contain {expected:?}"
            );
        }
    }

    #[test]
    fn windows_paths_are_recognised() {
        for windows in [
            "C:\\images",
            "c:/images",
            "D:",
            "\\\\server\\share",
            "images\\nano.wim",
        ] {
            assert!(is_windows_path(OsStr::new(windows)), "{windows}");
        }
        for unix in ["/srv/images", "images/nano.wim", "nano:1.0.wim", "./c:x"] {
            assert!(!is_windows_path(OsStr::new(unix)), "{unix}");
        }
    }

    #[test]
    fn question_mark_asks_for_help() {
        for asks in ["-?", "-h", "--help", "-Help"] {
            let b = bind(&find_like(), &["Name"], &[OsString::from(asks)]).expect("binds");
            assert!(b.help, "{asks}");
        }
    }

    #[test]
    fn pascal_case_names() {
        assert_eq!(pascal_case("required-version"), "RequiredVersion");
        assert_eq!(pascal_case("base-uri"), "BaseUri");
        assert_eq!(pascal_case("wim-path"), "WimPath");
    }
}
