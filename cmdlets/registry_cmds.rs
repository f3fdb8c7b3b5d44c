//! The registry cmdlets and their docker verbs:
//! `Request-ContainerImage` [`pull`], `Submit-ContainerImage` [`push`],
//! `Connect-ContainerRegistry` [`login`], `Disconnect-ContainerRegistry`
//! [`logout`] and `Find-ContainerRegistryImage` [`search`].

use std::io::{IsTerminal, Read, Write};

use clap::ArgMatches;
use containerimage_provider::download::Settings;
use containerimage_provider::progress::Reporter;
use containerimage_provider::registry::pull::{pull, PlatformChoice, Pulled};
use containerimage_provider::registry::push::{push, PushOptions, Pushed};
use containerimage_provider::registry::search::search;
use containerimage_provider::registry::{credentials, Client, Credentials, Reference, Secret};
use serde::Serialize;

use crate::cmdlet::{command_of, parse, CmdError, CmdResult, CmdletDef, Ctx};
use crate::store_cmds::{image_object, open_store, IMAGE_COLUMNS};

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Request-ContainerImage",
        synopsis: "Pulls a Windows image from a registry into the store (docker pull).",
        description: "The reference is host[:port]/repository[:tag|@sha256:...]; there is no default registry. From an index (manifest list) the windows entry of -Architecture (amd64) is chosen: with -OsVersion the one of that version (a 3-part build takes its newest revision), else the newest os.version. Every blob is verified; layers resume after an interruption, also in a later run. An image whose config is in the store already downloads no layers. Plain HTTP only for loopback or with -Insecure.",
        positional: &["Repository", "Tag"],
        mandatory: &["Repository"],
        pipeline: false,
        examples: &[
            ("containerimage Request-ContainerImage mcr.microsoft.com/windows/nanoserver:ltsc2022", "Pulls Nano Server."),
            ("containerimage Request-ContainerImage mcr.microsoft.com/windows/servercore ltsc2022 -OsVersion 10.0.20348", "The newest revision of build 20348."),
        ],
        command: command_of::<PullArgs>,
        run: request_image,
    },
    CmdletDef {
        name: "pull",
        synopsis: "docker pull: Request-ContainerImage with docker's arguments (NAME[:TAG|@DIGEST]).",
        description: "",
        positional: &["Repository"],
        mandatory: &["Repository"],
        pipeline: false,
        examples: &[("containerimage pull mcr.microsoft.com/windows/nanoserver:ltsc2022", "Pulls Nano Server.")],
        command: command_of::<DockerPullArgs>,
        run: docker_pull,
    },
    CmdletDef {
        name: "Submit-ContainerImage",
        synopsis: "Pushes an installed image to a registry (docker push).",
        description: "The image is exported (gzip by default) and its blobs uploaded; blobs the registry has are skipped, a layer whose image carries a tag of another repository of the same registry is mounted from there, and an interrupted upload resumes where the registry says. Without -Destination the image must be named by a registry reference it is tagged with.",
        positional: &["Image", "Destination"],
        mandatory: &["Image"],
        pipeline: false,
        examples: &[
            ("containerimage Submit-ContainerImage nanoserver:10.0.14300.1010 registry.example:5000/nanoserver:1", "Pushes the image under that reference."),
            ("containerimage push registry.example:5000/nanoserver:1", "The image tagged registry.example:5000/nanoserver:1."),
        ],
        command: command_of::<PushArgs>,
        run: submit_image,
    },
    CmdletDef {
        name: "push",
        synopsis: "docker push: Submit-ContainerImage with docker's arguments (NAME[:TAG]).",
        description: "",
        positional: &["Image"],
        mandatory: &["Image"],
        pipeline: false,
        examples: &[("containerimage push registry.example:5000/nanoserver:1", "Pushes the image with that tag.")],
        command: command_of::<DockerPushArgs>,
        run: docker_push,
    },
    CmdletDef {
        name: "Connect-ContainerRegistry",
        synopsis: "Logs in to a registry: checks the credentials with it, then stores them as docker does.",
        description: "The credentials go to Docker's file ($DOCKER_CONFIG/config.json or ~/.docker/config.json, mode 0600) or to the credential helper it names. The password is read from standard input with -PasswordStdin, else asked on the terminal.",
        positional: &["Registry"],
        mandatory: &["Registry"],
        pipeline: false,
        examples: &[("echo \"$PASSWORD\" | containerimage Connect-ContainerRegistry registry.example:5000 -UserName me -PasswordStdin", "Logs in.")],
        command: command_of::<LoginArgs>,
        run: connect_registry,
    },
    CmdletDef {
        name: "login",
        synopsis: "docker login: Connect-ContainerRegistry with docker's arguments (-u USER --password-stdin HOST).",
        description: "",
        positional: &["Registry"],
        mandatory: &["Registry"],
        pipeline: false,
        examples: &[("echo \"$PASSWORD\" | containerimage login -u me --password-stdin registry.example:5000", "Logs in.")],
        command: command_of::<LoginArgs>,
        run: docker_login,
    },
    CmdletDef {
        name: "Disconnect-ContainerRegistry",
        synopsis: "Logs out of a registry: removes its stored credentials.",
        description: "",
        positional: &["Registry"],
        mandatory: &["Registry"],
        pipeline: false,
        examples: &[("containerimage Disconnect-ContainerRegistry registry.example:5000", "Forgets the credentials.")],
        command: command_of::<LogoutArgs>,
        run: disconnect_registry,
    },
    CmdletDef {
        name: "logout",
        synopsis: "docker logout: Disconnect-ContainerRegistry with docker's arguments (HOST).",
        description: "",
        positional: &["Registry"],
        mandatory: &["Registry"],
        pipeline: false,
        examples: &[("containerimage logout registry.example:5000", "Forgets the credentials.")],
        command: command_of::<LogoutArgs>,
        run: docker_logout,
    },
    CmdletDef {
        name: "Find-ContainerRegistryImage",
        synopsis: "Lists the repositories of a registry whose name matches a pattern, with their tags.",
        description: "Wildcards * and ?; a plain word matches as a substring. The registry must offer its catalog (/v2/_catalog).",
        positional: &["Registry", "Term"],
        mandatory: &["Registry"],
        pipeline: false,
        examples: &[
            ("containerimage Find-ContainerRegistryImage registry.example:5000 nano", "Repositories with 'nano' in their name."),
            ("containerimage search registry.example:5000/nano", "The same, as docker search."),
        ],
        command: command_of::<SearchArgs>,
        run: find_registry_image,
    },
    CmdletDef {
        name: "search",
        synopsis: "docker search: Find-ContainerRegistryImage with docker's arguments (HOST/TERM).",
        description: "",
        positional: &["Registry"],
        mandatory: &["Registry"],
        pipeline: false,
        examples: &[("containerimage search registry.example:5000/nano", "Repositories with 'nano' in their name.")],
        command: command_of::<SearchArgs>,
        run: docker_search,
    },
];

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// host[:port]/repository[:tag|@sha256:...].
    #[arg(long)]
    repository: String,
    /// The tag, when the repository names none.
    #[arg(long)]
    tag: Option<String>,
    /// The os.version to choose from an index (4 parts exact, 3 the newest revision of that build).
    #[arg(long)]
    os_version: Option<String>,
    /// The architecture to choose from an index.
    #[arg(long, default_value = "amd64")]
    architecture: String,
    /// Download and install again an image that is in the store.
    #[arg(long)]
    force: bool,
    /// Allow plain HTTP to a registry that is not on this machine.
    #[arg(long)]
    insecure: bool,
}

#[derive(clap::Args, Debug)]
pub struct DockerPullArgs {
    /// NAME[:TAG|@DIGEST].
    #[arg(long)]
    repository: String,
    /// os.version to choose from an index.
    #[arg(long)]
    os_version: Option<String>,
    /// Allow plain HTTP to a registry that is not on this machine.
    #[arg(long)]
    insecure: bool,
    /// Print only the reference.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// The installed image: FullName, Id or repository[:tag].
    #[arg(long)]
    image: String,
    /// host[:port]/repository[:tag]; the image's own reference when left out.
    #[arg(long)]
    destination: Option<String>,
    /// Gzip (default), Zstd or None.
    #[arg(long, value_enum, ignore_case = true, default_value = "gzip")]
    compression: CompressionArg,
    /// Allow plain HTTP to a registry that is not on this machine.
    #[arg(long)]
    insecure: bool,
}

#[derive(clap::Args, Debug)]
pub struct DockerPushArgs {
    /// NAME[:TAG], a tag of an installed image.
    #[arg(long)]
    image: String,
    /// Allow plain HTTP to a registry that is not on this machine.
    #[arg(long)]
    insecure: bool,
    /// Print only the digest line.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CompressionArg {
    Gzip,
    Zstd,
    None,
}

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// host[:port].
    #[arg(long)]
    registry: String,
    /// The user name.
    #[arg(long)]
    user_name: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Allow plain HTTP to a registry that is not on this machine.
    #[arg(long)]
    insecure: bool,
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// host[:port].
    #[arg(long)]
    registry: String,
}

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// host[:port], or host[:port]/term as docker search takes it.
    #[arg(long)]
    registry: String,
    /// A wildcard pattern; a plain word matches as a substring.
    #[arg(long)]
    term: Option<String>,
    /// Allow plain HTTP to a registry that is not on this machine.
    #[arg(long)]
    insecure: bool,
}

/// A client for `registry` with the stored credentials.
fn client_for(ctx: &Ctx, registry: &str, insecure: bool) -> Result<Client, CmdError> {
    let credentials = credentials::lookup(registry)?;
    if credentials.is_some() {
        ctx.reporter()
            .verbose(&format!("using the stored credentials for {registry}"));
    }
    Ok(Client::new(
        registry,
        insecure,
        credentials,
        Settings::from_env(),
    )?)
}

/// The seeds' line after a download.
fn elapsed_line(pulled: &Pulled) -> String {
    let s = pulled.elapsed.as_secs();
    format!(
        "Downloaded in {} hours, {} minutes, {} seconds.",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

fn pull_reference(text: &str, tag: Option<&str>) -> Result<Reference, CmdError> {
    let mut reference = Reference::parse(text).map_err(|e| CmdError::usage(e.to_string()))?;
    if let Some(t) = tag {
        if reference.tag.is_some() || reference.digest.is_some() {
            return Err(CmdError::usage(format!(
                "'{text}' names a tag or digest already; leave out -Tag"
            )));
        }
        reference =
            Reference::parse(&format!("{text}:{t}")).map_err(|e| CmdError::usage(e.to_string()))?;
    }
    Ok(reference)
}

fn do_pull(
    ctx: &mut Ctx,
    reference: &Reference,
    choice: &PlatformChoice,
    force: bool,
    insecure: bool,
) -> Result<(Pulled, Vec<crate::store_cmds::ImageObject>), CmdError> {
    let client = client_for(ctx, &reference.registry, insecure)?;
    let store = open_store(ctx)?;
    let mut lock = store.lock(ctx.reporter())?;
    let pulled = pull(&mut lock, &client, reference, choice, force, ctx.reporter())
        .map_err(|e| CmdError::from(e).context(format!("cannot pull {reference}")))?;
    let objects = pulled
        .images
        .iter()
        .map(|r| image_object(&store, r, lock.tags()))
        .collect();
    drop(lock);
    ctx.reporter().line(&elapsed_line(&pulled));
    Ok((pulled, objects))
}

fn request_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: PullArgs = parse(m)?;
    let reference = pull_reference(&args.repository, args.tag.as_deref())?;
    let choice = PlatformChoice {
        os_version: args.os_version,
        architecture: args.architecture,
    };
    let (_, objects) = do_pull(ctx, &reference, &choice, args.force, args.insecure)?;
    for o in &objects {
        ctx.emit(o, IMAGE_COLUMNS)?;
    }
    Ok(())
}

fn docker_pull(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: DockerPullArgs = parse(m)?;
    let reference = pull_reference(&args.repository, None)?;
    let choice = PlatformChoice {
        os_version: args.os_version,
        architecture: "amd64".into(),
    };
    let (pulled, _) = do_pull(ctx, &reference, &choice, false, args.insecure)?;
    let mut lines = Vec::new();
    if !args.quiet {
        lines.push(format!("Digest: {}", pulled.digest));
        lines.push(if pulled.downloaded > 0 {
            format!("Status: Downloaded newer image for {reference}")
        } else {
            format!("Status: Image is up to date for {reference}")
        });
    }
    lines.push(reference.to_string());
    print_lines(&lines)
}

/// Push's object.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PushObject {
    destination: String,
    digest: String,
    size: u64,
}

fn do_push(
    ctx: &mut Ctx,
    image: &str,
    destination: Option<&str>,
    options: &PushOptions,
    insecure: bool,
) -> Result<Pushed, CmdError> {
    let target = destination.unwrap_or(image);
    let reference = Reference::parse(target).map_err(|e| {
        let e = CmdError::usage(e.to_string());
        if destination.is_none() {
            CmdError::usage(format!(
                "{e}; name the registry with -Destination host[:port]/repository[:tag], or tag the image with one first (Add-ContainerImageTag)"
            ))
        } else {
            e
        }
    })?;
    let client = client_for(ctx, &reference.registry, insecure)?;
    let store = open_store(ctx)?;
    // Held so that no other command empties the staging area meanwhile.
    let lock = store.lock(ctx.reporter())?;
    let pushed = push(
        lock.store(),
        &client,
        image,
        &reference,
        options,
        ctx.reporter(),
    )
    .map_err(|e| CmdError::from(e).context(format!("cannot push {image} to {reference}")))?;
    drop(lock);
    ctx.reporter().verbose(&format!(
        "{} blobs uploaded, {} mounted, {} already there",
        pushed.uploaded, pushed.mounted, pushed.skipped
    ));
    Ok(pushed)
}

fn push_options(compression: CompressionArg) -> PushOptions {
    use containerimage_provider::oci::spec::Compression;
    PushOptions {
        compression: match compression {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::None => Compression::None,
        },
        ..PushOptions::from_env()
    }
}

fn submit_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: PushArgs = parse(m)?;
    let options = push_options(args.compression);
    let pushed = do_push(
        ctx,
        &args.image,
        args.destination.as_deref(),
        &options,
        args.insecure,
    )?;
    ctx.emit(
        &PushObject {
            destination: pushed.destination,
            digest: pushed.digest,
            size: pushed.size,
        },
        &["Destination", "Digest", "Size"],
    )
}

fn docker_push(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: DockerPushArgs = parse(m)?;
    let options = push_options(CompressionArg::Gzip);
    let pushed = do_push(ctx, &args.image, None, &options, args.insecure)?;
    let tag = pushed
        .destination
        .rsplit_once(':')
        .map(|(_, t)| t.to_string())
        .unwrap_or_default();
    print_lines(&[format!(
        "{tag}: digest: {} size: {}",
        pushed.digest, pushed.size
    )])
}

/// Reads the password: from standard input with -PasswordStdin (one line,
/// or everything up to the end), else from the terminal without echo.
fn read_password(args: &LoginArgs) -> Result<String, CmdError> {
    let mut text = String::new();
    if args.password_stdin {
        std::io::stdin()
            .take(64 << 10)
            .read_to_string(&mut text)
            .map_err(|e| {
                CmdError::from(e).context("cannot read the password from standard input")
            })?;
    } else {
        if !std::io::stdin().is_terminal() {
            return Err(CmdError::usage(
                "no password: pipe it to standard input and add -PasswordStdin",
            ));
        }
        eprint!("Password: ");
        let _ = std::io::stderr().flush();
        // Echo off while the password is typed.
        let echo_off = std::process::Command::new("stty")
            .arg("-echo")
            .stdin(std::process::Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success());
        let read = std::io::stdin().read_line(&mut text);
        if echo_off {
            let _ = std::process::Command::new("stty")
                .arg("echo")
                .stdin(std::process::Stdio::inherit())
                .status();
        }
        eprintln!();
        read.map_err(|e| CmdError::from(e).context("cannot read the password"))?;
    }
    let password = text.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(CmdError::usage("the password is empty"));
    }
    Ok(password)
}

fn login(ctx: &mut Ctx, args: &LoginArgs) -> CmdResult {
    let registry = args
        .registry
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let user = args
        .user_name
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| CmdError::usage("-UserName is required"))?;
    let password = read_password(args)?;
    let credentials = Credentials {
        username: user,
        secret: Secret::Password(password),
    };
    let client = Client::new(
        registry,
        args.insecure,
        Some(credentials.clone()),
        Settings::from_env(),
    )?;
    client
        .check_login(ctx.reporter())
        .map_err(|e| CmdError::from(e).context(format!("cannot log in to {registry}")))?;
    let path = credentials::store(registry, &credentials).map_err(|e| {
        CmdError::from(e).context(format!("cannot store the credentials for {registry}"))
    })?;
    ctx.reporter().verbose(&format!(
        "credentials stored for {registry} ({})",
        path.display()
    ));
    Ok(())
}

fn connect_registry(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: LoginArgs = parse(m)?;
    login(ctx, &args)
}

fn docker_login(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: LoginArgs = parse(m)?;
    login(ctx, &args)?;
    print_lines(&["Login Succeeded".to_string()])
}

fn logout(ctx: &mut Ctx, args: &LogoutArgs) -> Result<bool, CmdError> {
    let registry = args
        .registry
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let removed = credentials::erase(registry)
        .map_err(|e| CmdError::from(e).context(format!("cannot log out of {registry}")))?;
    if !removed {
        ctx.reporter()
            .warn(&format!("no credentials were stored for {registry}"));
    }
    Ok(removed)
}

fn disconnect_registry(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: LogoutArgs = parse(m)?;
    logout(ctx, &args).map(|_| ())
}

fn docker_logout(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: LogoutArgs = parse(m)?;
    let registry = args.registry.clone();
    if logout(ctx, &args)? {
        print_lines(&[format!("Removing login credentials for {registry}")])
    } else {
        Ok(())
    }
}

/// Search's object.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct FoundObject {
    registry: String,
    repository: String,
    tags: Vec<String>,
}

fn run_search(ctx: &mut Ctx, args: &SearchArgs) -> Result<Vec<FoundObject>, CmdError> {
    let (registry, term) = match (args.registry.split_once('/'), &args.term) {
        (Some((host, rest)), None) => (host.to_string(), rest.to_string()),
        (Some(_), Some(_)) => {
            return Err(CmdError::usage(
                "give the term either after the registry (host/term) or as -Term, not both",
            ))
        }
        (None, term) => (args.registry.clone(), term.clone().unwrap_or_default()),
    };
    let client = client_for(ctx, &registry, args.insecure)?;
    let found = search(&client, &term, ctx.reporter())
        .map_err(|e| CmdError::from(e).context(format!("cannot search {registry}")))?;
    Ok(found
        .into_iter()
        .map(|f| FoundObject {
            registry: f.registry,
            repository: f.repository,
            tags: f.tags,
        })
        .collect())
}

fn find_registry_image(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: SearchArgs = parse(m)?;
    let found = run_search(ctx, &args)?;
    if found.is_empty() {
        return Err(CmdError::failed(format!(
            "No repository of {} matches '{}'.",
            args.registry,
            args.term.as_deref().unwrap_or_default()
        ))
        .hint("Find-ContainerRegistryImage <registry> lists every repository."));
    }
    for f in &found {
        ctx.emit(f, &["Registry", "Repository", "Tags"])?;
    }
    Ok(())
}

fn docker_search(ctx: &mut Ctx, m: &ArgMatches) -> CmdResult {
    let args: SearchArgs = parse(m)?;
    let found = run_search(ctx, &args)?;
    let mut lines = vec!["NAME\tTAGS".to_string()];
    for f in found {
        lines.push(format!(
            "{}/{}\t{}",
            f.registry,
            f.repository,
            f.tags.join(",")
        ));
    }
    print_lines(&lines)
}

fn print_lines(lines: &[String]) -> CmdResult {
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")
            .map_err(|e| CmdError::from(e).context("cannot write to standard output"))?;
    }
    Ok(())
}
