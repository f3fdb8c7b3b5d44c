//! Every "what to do" in the sources names only cmdlets and parameters
//! that exist: `Set-PackageSource -Name x -Trusted` must be a command that
//! binds, and a bare `-Force` in a hint must be a parameter of some cmdlet.

use std::path::{Path, PathBuf};

use crate::args::{params_of, Param};
use crate::{all_cmdlets, full_command, lookup};

fn sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut dirs = vec![root.join("cmdlets"), root.join("provider/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("advice_tests.rs")
            {
                out.push(path);
            }
        }
    }
    out
}

/// `-Trusted:$false'.` → `Trusted`; `None` when the token is not a parameter.
fn parameter_token(token: &str) -> Option<String> {
    let body = token.strip_prefix('-')?;
    let name: String = body
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let first = name.chars().next()?;
    first.is_ascii_alphabetic().then_some(name)
}

fn binds(params: &[Param], typed: &str) -> bool {
    let lower = typed.to_ascii_lowercase();
    let names = |p: &Param| {
        let mut v = vec![p.name.to_ascii_lowercase()];
        v.extend(p.aliases.iter().map(|a| a.to_ascii_lowercase()));
        v
    };
    params.iter().any(|p| names(p).contains(&lower))
        || params
            .iter()
            .filter(|p| names(p).iter().any(|n| n.starts_with(&lower)))
            .count()
            == 1
}

/// A token that ends a command line inside a message.
fn ends_command(token: &str) -> bool {
    token.ends_with(['.', ';', ')', '`']) || token.contains(['"', '\\'])
}

#[test]
fn every_parameter_named_after_a_cmdlet_exists() {
    let mut problems = Vec::new();
    for file in sources() {
        let text = std::fs::read_to_string(&file).expect("read source");
        for line in text.lines() {
            // Skip the lines that define or list cmdlets and Rust code
            // that merely mentions a cmdlet's name.
            let tokens: Vec<&str> = line.split_whitespace().collect();
            for (i, token) in tokens.iter().enumerate() {
                let word = token.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
                let Some(def) = lookup(word).filter(|d| d.name.contains('-')) else {
                    continue;
                };
                if ends_command(token) {
                    continue;
                }
                // `Get-Help Save-ContainerImage -Examples`: the parameters are Get-Help's.
                let after_get_help = i > 0 && tokens[i - 1].ends_with("Get-Help");
                if after_get_help {
                    continue;
                }
                let params = params_of(&full_command(def));
                for (k, next) in tokens[i + 1..].iter().enumerate() {
                    let topic = k == 0 && def.name == "Get-Help";
                    if !topic
                        && lookup(
                            next.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'),
                        )
                        .is_some()
                    {
                        break;
                    }
                    if let Some(name) = parameter_token(next) {
                        if !binds(&params, &name) {
                            problems.push(format!(
                                "{}: {} has no parameter -{name}: {}",
                                file.display(),
                                def.name,
                                line.trim()
                            ));
                        }
                    }
                    if ends_command(next) {
                        break;
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_parameter_named_in_a_hint_exists() {
    let all: Vec<Vec<Param>> = all_cmdlets().map(|d| params_of(&full_command(d))).collect();
    let mut problems = Vec::new();
    let mut hints = 0;
    for file in sources() {
        let text = std::fs::read_to_string(&file).expect("read source");
        for (at, _) in text.match_indices(".hint(") {
            // The argument of .hint(…): up to the closing parenthesis.
            let rest = &text[at + ".hint(".len()..];
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            hints += 1;
            // Inside `…` naming another program (`minisign -G`), its
            // options are that program's.
            let mut external = false;
            for raw in rest[..end].split_whitespace() {
                if let Some(first) = raw.strip_prefix('`') {
                    let word = first.trim_end_matches('`');
                    external = word != "containerimage"
                        && !all_cmdlets().any(|d| d.name.eq_ignore_ascii_case(word));
                }
                let closes = raw.len() > 1 && raw.ends_with('`') || raw.ends_with("`,");
                let skip = external;
                if closes {
                    external = false;
                }
                if skip {
                    continue;
                }
                let token = raw.trim_start_matches(['"', '\'', '(']);
                if let Some(name) = parameter_token(token) {
                    if !all.iter().any(|params| binds(params, &name)) {
                        problems.push(format!(
                            "{}: no cmdlet has -{name}: {}",
                            file.display(),
                            &rest[..end].trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(hints > 10, "the hints were not found ({hints})");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checks_catch_a_parameter_that_does_not_exist() {
    let def = lookup("Get-PackageProvider").expect("cmdlet");
    let params = params_of(&full_command(def));
    assert!(!binds(&params, "ListAvailable"));
    let def = lookup("Set-PackageSource").expect("cmdlet");
    assert!(binds(&params_of(&full_command(def)), "Trusted"));
    assert_eq!(parameter_token("-Trusted:$false'."), Some("Trusted".into()));
    assert_eq!(parameter_token("-1"), None);
}
