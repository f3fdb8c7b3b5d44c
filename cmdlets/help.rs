//! `Get-Help <Cmdlet>` and `<Cmdlet> -?`: synopsis, syntax per parameter
//! set, parameters and examples, laid out as PowerShell's help is.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, Command};

use crate::args::{self, ParamKind};
use crate::cmdlet::{command_of, parse, CmdError, CmdResult, CmdletDef, Ctx};

pub static CMDLETS: &[CmdletDef] = &[CmdletDef {
    name: "Get-Help",
    synopsis: "Shows the help of a cmdlet.",
    description: "Prints the synopsis, the syntax of every parameter set, the parameters and examples of a cmdlet.",
    positional: &["Name"],
    mandatory: &[],
    pipeline: false,
    examples: &[
        ("containerimage Get-Help Find-ContainerImage", "Shows how to use Find-ContainerImage."),
        ("containerimage Find-ContainerImage -?", "The same."),
    ],
    command: command_of::<GetHelpArgs>,
    run: get_help,
}];

#[derive(clap::Args, Debug)]
pub struct GetHelpArgs {
    /// The cmdlet to describe.
    #[arg(long)]
    name: Option<String>,
}

fn get_help(_ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let a: GetHelpArgs = parse(m)?;
    match a.name {
        None => {
            let mut s = String::from("Cmdlets (run Get-Help <Cmdlet-Name> for one):\n");
            for c in crate::all_cmdlets() {
                s.push_str(&format!("  {:<32} {}\n", c.name, c.synopsis));
            }
            print!("{s}");
            Ok(())
        }
        Some(name) => match crate::lookup(&name) {
            Some(def) => {
                print!("{}", render(def));
                Ok(())
            }
            None => Err(CmdError::usage(format!(
                "Get-Help could not find '{name}'. Run 'containerimage Get-Help' to list the cmdlets."
            ))),
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

fn syntax_lines(def: &CmdletDef) -> Vec<String> {
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
            let mut line = def.name.to_string();
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
                line.push(' ');
                line.push_str(&part);
            }
            line.push_str(" [-Verbose] [-OutputFormat <Table|List|Json>]");
            line
        })
        .collect()
}

/// The full help text of a cmdlet.
pub fn render(def: &CmdletDef) -> String {
    let cmd = crate::full_command(def);
    let params = args::params_of(&cmd);
    let mut s = format!(
        "\nNAME\n    {}\n\nSYNOPSIS\n    {}\n\nSYNTAX\n",
        def.name, def.synopsis
    );
    for line in syntax_lines(def) {
        s.push_str(&format!("    {line}\n\n"));
    }
    if !def.description.is_empty() {
        s.push_str(&format!("DESCRIPTION\n    {}\n\n", def.description));
    }
    s.push_str("PARAMETERS\n");
    for p in &params {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(p.long.as_str()));
        let about = arg
            .and_then(|a| a.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let ty = type_name(&cmd, &p.long, p.kind);
        s.push_str(&format!("    -{} <{ty}>\n", p.name));
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
            String::new()
        } else {
            format!("; Aliases: {}", p.aliases.join(", "))
        };
        let pipeline = def.pipeline && matches!(p.name.as_str(), "Name" | "FullName");
        s.push_str(&format!(
            "        Required? {}; Position? {position}; Accept pipeline input? {}{aliases}; GNU spelling: --{}\n\n",
            def.mandatory.contains(&p.name.as_str()),
            if pipeline { "true (ByPropertyName)" } else { "false" },
            p.long
        ));
    }
    s.push_str("EXAMPLES\n");
    for (i, (line, what)) in def.examples.iter().enumerate() {
        s.push_str(&format!(
            "    -------------------------- EXAMPLE {} --------------------------\n    $ {line}\n\n    {what}\n\n",
            i + 1
        ));
    }
    s
}

/// A clap error in PowerShell's words, naming parameters the PowerShell way.
pub fn clap_error_text(e: &clap::Error) -> String {
    let arg_name = || -> String {
        match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(s)) => ps_name(s),
            Some(ContextValue::Strings(v)) => {
                v.iter().map(|s| ps_name(s)).collect::<Vec<_>>().join(", ")
            }
            _ => String::from("?"),
        }
    };
    match e.kind() {
        ErrorKind::MissingRequiredArgument => {
            format!(
                "Cannot process command because of one or more missing mandatory parameters: {}.",
                arg_name()
            )
        }
        ErrorKind::ArgumentConflict => {
            let other = match e.get(ContextKind::PriorArg) {
                Some(ContextValue::String(s)) => ps_name(s),
                Some(ContextValue::Strings(v)) => {
                    v.iter().map(|s| ps_name(s)).collect::<Vec<_>>().join(", ")
                }
                _ => String::new(),
            };
            format!(
                "Parameter set cannot be resolved using the specified named parameters: {} cannot be used with {other}.",
                arg_name()
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
                arg_name()
            )
        }
        _ => {
            let text = e.render().to_string();
            text.lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string()
        }
    }
}

/// `--image-path <IMAGE_PATH>` → `-ImagePath`; a group
/// (`<--path <PATH>|--destination <DESTINATION>>`) → `-Path | -Destination`.
fn ps_name(clap_text: &str) -> String {
    let names: Vec<String> = clap_text
        .split(['|', ' ', '<', '>', '='])
        .filter_map(|w| w.strip_prefix("--"))
        .filter(|w| !w.is_empty())
        .map(|w| format!("-{}", args::pascal_case(w)))
        .collect();
    if names.is_empty() {
        clap_text.to_string()
    } else {
        names.join(" | ")
    }
}
