//! `Get-Help <Cmdlet>` and `<Cmdlet> -?`: synopsis, syntax per parameter
//! set, parameters and examples, laid out as PowerShell's help is.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, Command};

use crate::args::{self, ParamKind};
use crate::cmdlet::{command_of, parse, CmdError, CmdResult, CmdletDef, Ctx};

pub static CMDLETS: &[CmdletDef] = &[CmdletDef {
    name: "Get-Help",
    synopsis: "Shows the help of a cmdlet.",
    description: "Prints the synopsis, the syntax of every parameter set, the parameters and examples of a cmdlet. \
                  -Examples shows only the examples, -Full every detail of every parameter, \
                  -Parameter the details of one parameter. <Cmdlet> -?, -h and --help show the same as Get-Help <Cmdlet>.",
    positional: &["Name"],
    mandatory: &[],
    pipeline: false,
    examples: &[
        ("containerimage Get-Help Find-ContainerImage", "Shows how to use Find-ContainerImage."),
        ("containerimage Find-ContainerImage -?", "The same (also -h and --help)."),
        ("containerimage Get-Help Save-ContainerImage -Examples", "Shows only the examples."),
        ("containerimage Get-Help Save-ContainerImage -Parameter Destination", "Describes one parameter."),
    ],
    command: command_of::<GetHelpArgs>,
    run: get_help,
}];

#[derive(clap::Args, Debug)]
pub struct GetHelpArgs {
    /// The cmdlet to describe.
    #[arg(long)]
    name: Option<String>,
    /// Only the examples.
    #[arg(long)]
    examples: bool,
    /// Everything, with every detail of every parameter.
    #[arg(long)]
    full: bool,
    /// Only this parameter (wildcards allowed: -Parameter *Version).
    #[arg(long)]
    parameter: Option<String>,
}

/// What part of the help to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// Synopsis, syntax, description, parameters in short, examples.
    Default,
    Examples,
    Full,
    /// The parameters whose names match this pattern.
    Parameter(String),
}

fn get_help(_ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let a: GetHelpArgs = parse(m)?;
    let chosen = [a.examples, a.full, a.parameter.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if chosen > 1 {
        return Err(CmdError::usage(
            "Parameter set cannot be resolved using the specified named parameters: use one of -Examples, -Full or -Parameter.",
        ));
    }
    let view = match (a.examples, a.full, a.parameter) {
        (true, _, _) => View::Examples,
        (_, true, _) => View::Full,
        (_, _, Some(p)) => View::Parameter(p),
        _ => View::Default,
    };
    match a.name {
        None => {
            if view != View::Default {
                return Err(CmdError::usage(
                    "name the cmdlet: Get-Help <Cmdlet-Name> -Examples|-Full|-Parameter <name>",
                ));
            }
            let mut s = String::from("Cmdlets (run Get-Help <Cmdlet-Name> for one):\n");
            for c in crate::all_cmdlets() {
                s.push_str(&format!("  {:<32} {}\n", c.name, c.synopsis));
            }
            print!("{s}");
            Ok(())
        }
        Some(name) => match crate::lookup(&name) {
            Some(def) => {
                print!("{}", render_view(def, &view)?);
                Ok(())
            }
            None => {
                let close = crate::closest_cmdlets(&name);
                let mut message = format!("Get-Help could not find '{name}'.");
                if !close.is_empty() {
                    message.push_str(&format!(" Did you mean: {}?", close.join(", ")));
                }
                message.push_str(" Run 'containerimage Get-Help' to list the cmdlets.");
                Err(CmdError::usage(message))
            }
        },
    }
}

/// The type PowerShell would show for a parameter.
fn type_name(cmd: &Command, long: &str, kind: ParamKind) -> &'static str {
    let declared = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| {
            a.get_value_names()
                .and_then(|v| v.first().map(|s| s.to_string()))
        });
    match (kind, declared.as_deref()) {
        (ParamKind::Switch | ParamKind::TriStateSwitch, _) => "SwitchParameter",
        (_, Some("UInt32")) => "UInt32",
        (ParamKind::Array, _) => "String[]",
        _ => "String",
    }
}

/// The exclusive groups of a command (members, required): one syntax line per member.
fn parameter_sets(cmd: &Command) -> Vec<(Vec<String>, bool)> {
    cmd.get_groups()
        .filter(|g| !(*g).clone().is_multiple())
        .map(|g| {
            (
                g.get_args()
                    .map(|id| args::pascal_case(id.as_str()))
                    .collect(),
                g.is_required_set(),
            )
        })
        .collect()
}

/// One syntax line per parameter set, as its parts (the cmdlet name, then
/// one part per parameter, e.g. `[-Name] <String[]>`).
fn syntax_lines(def: &CmdletDef) -> Vec<Vec<String>> {
    let cmd = crate::full_command(def);
    let params = args::params_of(&cmd);
    let sets = parameter_sets(&cmd);
    let exclusive: Vec<String> = sets
        .iter()
        .flat_map(|(members, _)| members.iter().cloned())
        .collect();
    let set_required = sets.first().is_some_and(|(_, required)| *required);
    let choices: Vec<Option<&String>> = match sets.first() {
        Some((members, _)) => members.iter().map(Some).collect(),
        None => vec![None],
    };
    let common = ["Verbose", "OutputFormat"];
    choices
        .into_iter()
        .map(|chosen| {
            let mut line = vec![def.name.to_string()];
            let mut shown: Vec<&args::Param> = params
                .iter()
                .filter(|p| !common.contains(&p.name.as_str()))
                .filter(|p| !exclusive.contains(&p.name) || Some(&p.name) == chosen)
                .collect();
            // Positional parameters first, in position order, as PowerShell lists them.
            shown.sort_by_key(|p| {
                def.positional
                    .iter()
                    .position(|n| *n == p.name)
                    .unwrap_or(usize::MAX)
            });
            for p in shown {
                let mandatory = def.mandatory.contains(&p.name.as_str())
                    || (set_required && Some(&p.name) == chosen);
                let positional = def.positional.contains(&p.name.as_str());
                let ty = type_name(&cmd, &p.long, p.kind);
                let part = match p.kind {
                    ParamKind::Switch | ParamKind::TriStateSwitch => format!("[-{}]", p.name),
                    _ => {
                        let name = if positional {
                            format!("[-{}]", p.name)
                        } else {
                            format!("-{}", p.name)
                        };
                        if mandatory {
                            format!("{name} <{ty}>")
                        } else {
                            format!("[{name} <{ty}>]")
                        }
                    }
                };
                line.push(part);
            }
            line.push("[-Verbose]".to_string());
            line.push("[-OutputFormat <Table|List|Json>]".to_string());
            line
        })
        .collect()
}

/// Joins `parts` into lines no wider than `width`, breaking only between
/// parts: the first line indented by four spaces, the next ones by eight.
pub fn wrap_parts(parts: &[String], width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from("    ");
    let mut empty = true;
    for part in parts {
        let fits = line.chars().count() + 1 + part.chars().count() <= width;
        if !empty && !fits {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from("        ");
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(part);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// The help text of a cmdlet as `Get-Help <Cmdlet>` shows it.
pub fn render(def: &CmdletDef) -> String {
    render_view(def, &View::Default).unwrap_or_default()
}

/// One parameter's detailed block.
fn parameter_block(def: &CmdletDef, cmd: &Command, p: &args::Param) -> String {
    let about = parameter_about(cmd, p);
    let ty = type_name(cmd, &p.long, p.kind);
    let mut s = format!("    -{} <{ty}>\n", p.name);
    if !about.is_empty() {
        s.push_str(&format!("        {about}\n"));
    }
    let position = def
        .positional
        .iter()
        .position(|n| *n == p.name)
        .map(|i| i.to_string())
        .unwrap_or_else(|| "named".into());
    let aliases = if p.aliases.is_empty() {
        "None".to_string()
    } else {
        p.aliases.join(", ")
    };
    let pipeline = def.pipeline && matches!(p.name.as_str(), "Name" | "FullName");
    s.push_str(&format!(
        "\n        Required?                    {}\n        Position?                    {position}\n        \
         Accept pipeline input?       {}\n        Aliases                      {aliases}\n        \
         GNU spelling                 --{}\n\n",
        def.mandatory.contains(&p.name.as_str()),
        if pipeline { "true (ByPropertyName)" } else { "false" },
        p.long
    ));
    s
}

fn parameter_about(cmd: &Command, p: &args::Param) -> String {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(p.long.as_str()))
        .and_then(|a| a.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default()
}

fn examples_text(def: &CmdletDef) -> String {
    let mut s = String::from("EXAMPLES\n");
    for (i, (line, what)) in def.examples.iter().enumerate() {
        s.push_str(&format!(
            "    -------------------------- EXAMPLE {} --------------------------\n    $ {line}\n\n    {what}\n\n",
            i + 1
        ));
    }
    s
}

/// The part of a cmdlet's help that `view` asks for; syntax lines are
/// wrapped to the terminal's width (80 columns when it is not a terminal).
pub fn render_view(def: &CmdletDef, view: &View) -> Result<String, CmdError> {
    let cmd = crate::full_command(def);
    let params = args::params_of(&cmd);
    let head = format!(
        "\nNAME\n    {}\n\nSYNOPSIS\n    {}\n\n",
        def.name, def.synopsis
    );
    match view {
        View::Examples => return Ok(head + &examples_text(def)),
        View::Parameter(pattern) => {
            let chosen: Vec<&args::Param> = params
                .iter()
                .filter(|p| containerimage_provider::wildcard::matches(pattern, &p.name))
                .collect();
            if chosen.is_empty() {
                let names: Vec<String> = params.iter().map(|p| format!("-{}", p.name)).collect();
                return Err(CmdError::usage(format!(
                    "{} has no parameter '{pattern}'. Its parameters: {}.",
                    def.name,
                    names.join(" ")
                )));
            }
            let mut s = String::new();
            for p in chosen {
                s.push_str(&parameter_block(def, &cmd, p));
            }
            return Ok(s);
        }
        View::Default | View::Full => {}
    }
    let width = crate::output::table_width().unwrap_or(80).max(40);
    let mut s = head + "SYNTAX\n";
    for parts in syntax_lines(def) {
        s.push_str(&wrap_parts(&parts, width));
        s.push('\n');
    }
    if !def.description.is_empty() {
        s.push_str(&format!("DESCRIPTION\n    {}\n\n", def.description));
    }
    s.push_str("PARAMETERS\n");
    for p in &params {
        if *view == View::Full {
            s.push_str(&parameter_block(def, &cmd, p));
        } else {
            let ty = type_name(&cmd, &p.long, p.kind);
            s.push_str(&format!("    -{} <{ty}>\n", p.name));
            let about = parameter_about(&cmd, p);
            if !about.is_empty() {
                s.push_str(&format!("        {about}\n"));
            }
        }
    }
    if *view != View::Full {
        s.push_str(&format!(
            "\n    For every detail: containerimage Get-Help {} -Full\n",
            def.name
        ));
    }
    s.push('\n');
    s.push_str(&examples_text(def));
    Ok(s)
}

/// A clap error in PowerShell's words, naming parameters the PowerShell way.
pub fn clap_error_text(e: &clap::Error, cmd: &Command) -> String {
    let names = |kind: ContextKind| -> String {
        match e.get(kind) {
            Some(ContextValue::String(s)) => ps_name(cmd, s),
            Some(ContextValue::Strings(v)) => v
                .iter()
                .map(|s| ps_name(cmd, s))
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::from("?"),
        }
    };
    match e.kind() {
        ErrorKind::MissingRequiredArgument => {
            format!(
                "Cannot process command because of one or more missing mandatory parameters: {}.",
                names(ContextKind::InvalidArg)
            )
        }
        ErrorKind::ArgumentConflict => {
            let other = match e.get(ContextKind::PriorArg) {
                Some(_) => names(ContextKind::PriorArg),
                None => String::new(),
            };
            format!(
                "Parameter set cannot be resolved using the specified named parameters: {} cannot be used with {other}.",
                names(ContextKind::InvalidArg)
            )
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let value = match e.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            let valid = match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(v)) => format!(" Valid values: {}.", v.join(", ")),
                _ => String::new(),
            };
            format!(
                "Cannot bind parameter '{}'. Cannot convert value \"{value}\".{valid}",
                names(ContextKind::InvalidArg)
            )
        }
        other => {
            let what = other
                .as_str()
                .unwrap_or("the parameters cannot be used together");
            match e.get(ContextKind::InvalidArg) {
                Some(_) => format!("{what}: {}", names(ContextKind::InvalidArg)),
                None => what.to_string(),
            }
        }
    }
}

/// The PowerShell name of what a clap error names: one of the command's
/// arguments (`-ImagePath`), or one of its groups (`-Path | -Destination`).
/// Each is recognised by comparing with clap's own rendering of the
/// command's arguments and groups, never by taking the text apart.
fn ps_name(cmd: &Command, clap_text: &str) -> String {
    let ps = |a: &clap::Arg| {
        a.get_long()
            .map(|l| format!("-{}", args::pascal_case(l)))
            .unwrap_or_else(|| a.get_id().to_string())
    };
    if let Some(a) = cmd.get_arguments().find(|a| a.to_string() == clap_text) {
        return ps(a);
    }
    for g in cmd.get_groups() {
        let members: Vec<&clap::Arg> = g
            .get_args()
            .filter_map(|id| cmd.get_arguments().find(|a| a.get_id() == id))
            .collect();
        let rendered = members
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join("|");
        if clap_text == format!("<{rendered}>") || clap_text == rendered {
            return members
                .iter()
                .map(|a| ps(a))
                .collect::<Vec<_>>()
                .join(" | ");
        }
    }
    clap_text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_wraps_between_parameters_only() {
        let parts: Vec<String> = [
            "Save-ContainerImage",
            "[-Name] <String[]>",
            "-Path <String>",
            "[-MinimumVersion <String>]",
            "[-Force]",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let text = wrap_parts(&parts, 50);
        assert_eq!(
            text,
            "    Save-ContainerImage [-Name] <String[]>\n        -Path <String> [-MinimumVersion <String>]\n        [-Force]\n"
        );
    }
}
