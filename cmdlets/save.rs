//! `Save-ContainerImage` and `Save-Package`: verified, resumable downloads.
#![allow(dead_code)] // parameters are read once the bodies land

use crate::cmdlet::{command_of, not_yet, CmdletDef};
use crate::find::VersionArgs;

/// Where to save: exactly one of these.
#[derive(clap::Args, Debug, Clone)]
#[group(id = "target", required = true, multiple = false)]
pub struct SaveTarget {
    /// The folder to save into (wildcards allowed; must resolve to one folder).
    #[arg(long)]
    pub path: Option<String>,
    /// The folder to save into, taken literally.
    #[arg(long)]
    pub literal_path: Option<String>,
    /// Exactly this file (the older syntax: -Destination c:\images\NanoServer.wim).
    #[arg(long)]
    pub destination: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    /// Image names; wildcards allowed. Omit to read Find-ContainerImage objects from standard input.
    #[arg(long)]
    pub name: Vec<String>,
    #[command(flatten)]
    pub target: SaveTarget,
    #[command(flatten)]
    pub versions: VersionArgs,
    /// Only these registered sources.
    #[arg(long)]
    pub source: Vec<String>,
    /// Download again even when a verified file is there; create a missing folder.
    #[arg(long)]
    pub force: bool,
    /// Show what would be saved, change nothing.
    #[arg(long)]
    pub what_if: bool,
    /// An HTTP proxy URL (overrides HTTPS_PROXY/HTTP_PROXY).
    #[arg(long)]
    pub proxy: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct SavePackageArgs {
    #[command(flatten)]
    pub save: SaveArgs,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Save-ContainerImage",
        synopsis: "Downloads images to a folder (an offline feed) or a file, verifying size and SHA-256.",
        description: "Downloads resume after interruptions, are retried, and fall back to the next mirror. \
                      With -Path the folder's feed.xml is written or updated so the folder can be registered as a source.",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: true,
        examples: &[
            ("containerimage Save-ContainerImage -Name NanoServer -Path /srv/images", "Saves the newest Nano Server."),
            (
                "containerimage Save-ContainerImage -Name NanoServer -Destination /tmp/NanoServer.wim",
                "Saves to exactly that file.",
            ),
            (
                "containerimage Find-ContainerImage '*nano*' | containerimage Save-ContainerImage -Path /srv/images",
                "Saves what Find found.",
            ),
        ],
        command: command_of::<SaveArgs>,
        run: not_yet::<SaveArgs>,
    },
    CmdletDef {
        name: "Save-Package",
        synopsis: "Save-ContainerImage under OneGet's generic name (-ProviderName ContainerImage).",
        description: "",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: true,
        examples: &[(
            "containerimage Save-Package -ProviderName ContainerImage -Name NanoServer -Path /srv/images",
            "Saves Nano Server.",
        )],
        command: command_of::<SavePackageArgs>,
        run: not_yet::<SavePackageArgs>,
    },
];
