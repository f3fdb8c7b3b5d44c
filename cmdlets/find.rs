//! Feeds: `Find-ContainerImage`, `Find-Package`, `New-ContainerImageFeed`.
#![allow(dead_code)] // parameters are read once the bodies land

use crate::cmdlet::{command_of, not_yet, CmdletDef};

/// Version bounds shared by Find, Save and Install.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct VersionArgs {
    /// The lowest version to accept (inclusive).
    #[arg(long)]
    pub minimum_version: Option<String>,
    /// The highest version to accept (inclusive).
    #[arg(long)]
    pub maximum_version: Option<String>,
    /// Exactly this version (alias: -Version).
    #[arg(long, alias = "version")]
    pub required_version: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct FindArgs {
    /// Image names; wildcards * and ? allowed.
    #[arg(long)]
    pub name: Vec<String>,
    #[command(flatten)]
    pub versions: VersionArgs,
    /// Every matching version, not only the highest of each name.
    #[arg(long)]
    pub all_versions: bool,
    /// Only these registered sources.
    #[arg(long)]
    pub source: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct FindPackageArgs {
    #[command(flatten)]
    pub find: FindArgs,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct NewFeedArgs {
    /// The folder of .wim files.
    #[arg(long)]
    pub path: String,
    /// The URL the folder will be served at; locations are written relative without it.
    #[arg(long)]
    pub base_uri: Option<String>,
}

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Find-ContainerImage",
        synopsis: "Finds container OS images in the registered sources.",
        description: "Searches every registered source (or those named by -Source) for images whose name matches. \
                      Without version parameters only the highest version of each name is returned.",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[
            ("containerimage Find-ContainerImage", "Lists the newest version of every image."),
            ("containerimage Find-ContainerImage '*nano*' -AllVersions", "Every version of every Nano Server image."),
            (
                "containerimage Find-ContainerImage NanoServer -MinimumVersion 10.0.14300 -Source Local",
                "Nano Server images from version 10.0.14300 on, from the source named Local.",
            ),
        ],
        command: command_of::<FindArgs>,
        run: not_yet::<FindArgs>,
    },
    CmdletDef {
        name: "Find-Package",
        synopsis: "Find-ContainerImage under OneGet's generic name (-ProviderName ContainerImage).",
        description: "",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[("containerimage Find-Package -ProviderName ContainerImage -Name NanoServer", "Finds Nano Server.")],
        command: command_of::<FindPackageArgs>,
        run: not_yet::<FindPackageArgs>,
    },
    CmdletDef {
        name: "New-ContainerImageFeed",
        synopsis: "Writes feed.xml for a folder of .wim files.",
        description: "Reads name, version and description from every .wim file in the folder (and one level below), \
                      computes size and SHA-256, and writes the folder's feed.xml.",
        positional: &["Path"],
        mandatory: &["Path"],
        pipeline: false,
        examples: &[
            ("containerimage New-ContainerImageFeed -Path /srv/images", "Makes /srv/images a feed."),
            (
                "containerimage New-ContainerImageFeed /srv/images -BaseUri https://images.example.com/",
                "Writes absolute locations under that URL.",
            ),
        ],
        command: command_of::<NewFeedArgs>,
        run: not_yet::<NewFeedArgs>,
    },
];
