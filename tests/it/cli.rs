//! The command line itself: cmdlet names, the argument reader's usage
//! errors, help, and the multicall links.

use crate::common::{assert_exit, run, stderr, stdout};

#[test]
fn usage_errors_exit_2_with_powershell_wording() {
    let home = tempfile::tempdir().expect("tempdir");
    let cases: &[(&[&str], &str)] = &[
        (
            &["Find-ContainerImage", "-M", "1.0"],
            "the parameter name 'M' is ambiguous. Possible matches include: -MinimumVersion -MaximumVersion.",
        ),
        (&["Find-ContainerImage", "-Bogus"], "A parameter cannot be found that matches parameter name 'Bogus'."),
        (&["Find-ContainerImage", "-Name"], "Missing an argument for parameter 'Name'."),
        (&["Save-ContainerImage", "-Name", "x", "-Force:"], "Missing a value for switch parameter 'Force'"),
        (&["Save-ContainerImage", "-Name", "x"], "missing mandatory parameters: -Path | -LiteralPath | -Destination"),
        (
            &["Save-ContainerImage", "x", "-Path", "a", "-Destination", "b"],
            "Parameter set cannot be resolved using the specified named parameters",
        ),
        (&["Get-WindowsImage", "x.wim", "-Index", "one"], "Cannot bind parameter '-Index'"),
        (&["Get-WindowsImage", "a.wim", "b.wim"], "A positional parameter cannot be found that accepts argument 'b.wim'."),
        (&["Move-ContainerImageRepository", "-Path", "a", "-Path", "b"], "specified more than once"),
        (&["Get-ContainerImage", "-OutputFormat", "Yaml"], "Cannot bind parameter '-OutputFormat'"),
        // An empty value never silently means "everything".
        (&["Get-ContainerImage", "-Name:"], "Cannot validate argument on parameter 'Name'. The argument is null or empty."),
        (&["Find-ContainerImage", "-Name", ""], "Cannot validate argument on parameter 'Name'."),
        (&["Find-ContainerImage", "-Name", ",,"], "Cannot validate argument on parameter 'Name'."),
        (&["Install-ContainerOSImage", "x.wim", "-Publisher:"], "Cannot validate argument on parameter 'Publisher'."),
    ];
    for (args, expected) in cases {
        let o = run(home.path(), args);
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(
            err.contains(expected),
            "{args:?}: stderr {err:?} should contain {expected:?}"
        );
        assert!(
            err.contains("Get-Help"),
            "{args:?}: a usage error points to Get-Help: {err:?}"
        );
        assert!(stdout(&o).is_empty(), "{args:?}: nothing on stdout");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn unknown_cmdlet_suggests_the_closest_names() {
    let home = tempfile::tempdir().expect("tempdir");
    let o = run(home.path(), &["Find-ContainerImag", "-Name", "x"]);
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("'Find-ContainerImag' is not recognized"),
        "{err}"
    );
    assert!(err.contains("Did you mean: Find-ContainerImage"), "{err}");
}

#[test]
fn cmdlet_names_are_case_insensitive() {
    let home = tempfile::tempdir().expect("tempdir");
    let o = run(home.path(), &["find-containerimage", "-?"]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("NAME\n    Find-ContainerImage"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn every_cmdlet_has_help_with_syntax_and_examples() {
    let home = tempfile::tempdir().expect("tempdir");
    let list = run(home.path(), &["--list-cmdlets"]);
    assert_exit(&list, 0);
    let names: Vec<String> = stdout(&list).lines().map(str::to_string).collect();
    for expected in [
        "Install-PackageProvider",
        "Get-PackageProvider",
        "Register-PackageSource",
        "Set-PackageSource",
        "Unregister-PackageSource",
        "Get-PackageSource",
        "Find-ContainerImage",
        "Save-ContainerImage",
        "Install-ContainerImage",
        "New-ContainerImageFeed",
        "Install-ContainerOSImage",
        "Get-WindowsImage",
        "Expand-WindowsImage",
        "Test-WindowsImage",
        "Get-ContainerImage",
        "Uninstall-ContainerOSImage",
        "Remove-ContainerImage",
        "Move-ContainerImageRepository",
        "Test-ContainerImage",
        "Find-Package",
        "Save-Package",
        "Install-Package",
        "Get-Package",
        "Uninstall-Package",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "cmdlet {expected} is missing from {names:?}"
        );
    }
    for name in &names {
        for how in [vec![name.as_str(), "-?"], vec!["Get-Help", name.as_str()]] {
            let o = run(home.path(), &how);
            assert_exit(&o, 0);
            let text = stdout(&o);
            for section in [
                "NAME",
                "SYNOPSIS",
                "SYNTAX",
                "PARAMETERS",
                "EXAMPLES",
                "EXAMPLE 1",
            ] {
                assert!(
                    text.contains(section),
                    "{how:?}: help lacks {section}:\n{text}"
                );
            }
            assert!(
                text.contains(&format!("\n    {name} ")),
                "{how:?}: syntax line missing:\n{text}"
            );
        }
    }
}

#[test]
fn help_shows_every_parameter_set() {
    let home = tempfile::tempdir().expect("tempdir");
    let o = run(home.path(), &["Get-Help", "Save-ContainerImage"]);
    let text = stdout(&o);
    for set in [
        "-Path <String>",
        "-LiteralPath <String>",
        "-Destination <String>",
    ] {
        assert!(
            text.contains(&format!("Save-ContainerImage [-Name] <String[]> {set}")),
            "{set}:\n{text}"
        );
    }
}

#[test]
fn multicall_link_runs_the_cmdlet_it_is_named_after() {
    let home = tempfile::tempdir().expect("tempdir");
    let links = tempfile::tempdir().expect("tempdir");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-cmdlets.sh");
    let bin = crate::common::bin_path();
    let dir = links.path().join("bin");
    let o = std::process::Command::new("bash")
        .arg(script)
        .arg(&dir)
        .arg(&bin)
        .output()
        .expect("install-cmdlets.sh runs");
    assert_exit(&o, 0);
    let link = dir.join("Find-ContainerImage");
    assert!(
        link.exists(),
        "install-cmdlets.sh made no Find-ContainerImage link"
    );
    let o = std::process::Command::new(&link)
        .args(["-M", "1"])
        .env("CONTAINERIMAGE_HOME", home.path())
        .output()
        .expect("link runs");
    assert_exit(&o, 2);
    assert!(
        stderr(&o).starts_with("Find-ContainerImage: "),
        "{}",
        stderr(&o)
    );
    let help = std::process::Command::new(dir.join("Get-ContainerImage"))
        .arg("-?")
        .output()
        .expect("link runs");
    assert_exit(&help, 0);
    assert!(
        stdout(&help).contains("NAME\n    Get-ContainerImage"),
        "{}",
        stdout(&help)
    );
}

#[test]
fn no_arguments_is_a_usage_error_listing_cmdlets() {
    let home = tempfile::tempdir().expect("tempdir");
    let o = run(home.path(), &[]);
    assert_exit(&o, 2);
    assert!(stdout(&o).contains("Find-ContainerImage"), "{}", stdout(&o));
}

#[test]
fn file_names_that_are_not_utf8_can_be_named() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = tmp.path().join("tree/Windows");
    std::fs::create_dir_all(&tree).expect("mkdir");
    std::fs::write(tree.join("a.txt"), b"a").expect("write");
    let wim = tmp.path().join(OsStr::from_bytes(b"Ba\xffse.wim"));
    let o = std::process::Command::new("wimlib-imagex")
        .arg("capture")
        .arg(tmp.path().join("tree"))
        .arg(&wim)
        .arg("OS")
        .output()
        .expect("wimlib-imagex runs (apt-get install -y wimtools)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let home = tmp.path().join("home");
    let install = |extra: &[&str]| {
        crate::common::cmd(&home)
            .arg("Install-ContainerOSImage")
            .arg(&wim)
            .args(["-Version", "1.0"])
            .args(extra)
            .output()
            .expect("runs")
    };
    // No name can be read from such a file name: asked for, never mangled.
    let o = install(&[]);
    crate::common::assert_fails(&o, "(Install-ContainerOSImage also takes -Name)");
    let o = install(&["-Name", "Base"]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("CN=Microsoft_Base_1.0.0.0"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn an_empty_pipe_does_nothing_and_succeeds() {
    // `Find-ContainerImage 'zz*' | Install-ContainerImage`: nothing found,
    // nothing to do, as in PowerShell.
    let home = tempfile::tempdir().expect("tempdir");
    for cmdlet in [
        "Install-ContainerImage",
        "Save-ContainerImage",
        "Uninstall-ContainerOSImage",
        "Remove-ContainerImage",
        "Uninstall-Package",
    ] {
        let mut args = vec![cmdlet];
        if cmdlet == "Save-ContainerImage" {
            args.extend(["-Path", "."]);
        }
        let o = run(home.path(), &args);
        assert_exit(&o, 0);
        assert!(stdout(&o).is_empty(), "{cmdlet}: nothing on stdout");
    }
}
