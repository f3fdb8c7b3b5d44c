//! The provider and its sources: `Install-/Get-PackageProvider`,
//! `Register-/Set-/Unregister-/Get-PackageSource`.
#![allow(dead_code)] // parameters are read once the bodies land

use crate::cmdlet::{command_of, not_yet, CmdletDef};

#[derive(clap::Args, Debug)]
pub struct InstallProviderArgs {
    /// ContainerImage (or the older name ContainerProvider).
    #[arg(long)]
    pub name: String,
    /// Initialise again even if already initialised.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct GetProviderArgs {
    /// Provider name pattern.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RegisterSourceArgs {
    /// The source's name.
    #[arg(long)]
    pub name: String,
    /// A feed URL (http, https, file) or a local feed file or folder.
    #[arg(long)]
    pub location: String,
    /// Install from this source without asking.
    #[arg(long)]
    pub trusted: bool,
    /// Replace a source of the same name.
    #[arg(long)]
    pub force: bool,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct SetSourceArgs {
    /// The source to change.
    #[arg(long)]
    pub name: String,
    /// A new name.
    #[arg(long)]
    pub new_name: Option<String>,
    /// A new location.
    #[arg(long)]
    pub new_location: Option<String>,
    /// -Trusted or -Trusted:$false.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub trusted: Option<bool>,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct UnregisterSourceArgs {
    /// The source to remove (alias: -Name).
    #[arg(long, alias = "name")]
    pub source: String,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct GetSourceArgs {
    /// Source name pattern; wildcards allowed.
    #[arg(long)]
    pub name: Option<String>,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Install-PackageProvider",
        synopsis: "Initialises the ContainerImage provider: configuration and image store. Idempotent.",
        description: "",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: false,
        examples: &[("containerimage Install-PackageProvider ContainerImage", "Prepares the configuration and store.")],
        command: command_of::<InstallProviderArgs>,
        run: not_yet::<InstallProviderArgs>,
    },
    CmdletDef {
        name: "Get-PackageProvider",
        synopsis: "Shows the ContainerImage provider and its options.",
        description: "",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[("containerimage Get-PackageProvider", "Shows the provider.")],
        command: command_of::<GetProviderArgs>,
        run: not_yet::<GetProviderArgs>,
    },
    CmdletDef {
        name: "Register-PackageSource",
        synopsis: "Registers a feed (URL, file or folder) as a source of images.",
        description: "New sources are untrusted: installing from them asks first, unless -Trusted.",
        positional: &["Name", "Location"],
        mandatory: &["Name", "Location"],
        pipeline: false,
        examples: &[
            (
                "containerimage Register-PackageSource -Name Official -Location https://images.example.com/feed.xml",
                "Registers an HTTP feed.",
            ),
            ("containerimage Register-PackageSource Local /srv/images -Trusted", "Registers a trusted folder."),
        ],
        command: command_of::<RegisterSourceArgs>,
        run: not_yet::<RegisterSourceArgs>,
    },
    CmdletDef {
        name: "Set-PackageSource",
        synopsis: "Renames, relocates or (un)trusts a registered source.",
        description: "",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: false,
        examples: &[
            ("containerimage Set-PackageSource Local -Trusted", "Trusts the source Local."),
            ("containerimage Set-PackageSource Local -Trusted:false", "Stops trusting it."),
        ],
        command: command_of::<SetSourceArgs>,
        run: not_yet::<SetSourceArgs>,
    },
    CmdletDef {
        name: "Unregister-PackageSource",
        synopsis: "Removes a registered source.",
        description: "",
        positional: &["Source"],
        mandatory: &["Source"],
        pipeline: false,
        examples: &[("containerimage Unregister-PackageSource Local", "Forgets the source Local.")],
        command: command_of::<UnregisterSourceArgs>,
        run: not_yet::<UnregisterSourceArgs>,
    },
    CmdletDef {
        name: "Get-PackageSource",
        synopsis: "Lists the registered sources.",
        description: "",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[("containerimage Get-PackageSource", "Lists every source.")],
        command: command_of::<GetSourceArgs>,
        run: not_yet::<GetSourceArgs>,
    },
];
