//! Offline `.wim` files, DISM-shaped: `Get-WindowsImage`,
//! `Expand-WindowsImage`, `Test-WindowsImage`.
#![allow(dead_code)] // parameters are read once the bodies land

use crate::cmdlet::{command_of, not_yet, CmdletDef};

/// Which image of a file: by index or by name.
#[derive(clap::Args, Debug, Clone)]
#[group(id = "image", multiple = false)]
pub struct ImageSelector {
    /// The image's index (1-based).
    #[arg(long, value_name = "UInt32")]
    pub index: Option<u32>,
    /// The image's name.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct GetWindowsImageArgs {
    /// The .wim file.
    #[arg(long)]
    pub image_path: String,
    #[command(flatten)]
    pub image: ImageSelector,
}

#[derive(clap::Args, Debug)]
pub struct ExpandArgs {
    /// The .wim file.
    #[arg(long)]
    pub image_path: String,
    #[command(flatten)]
    pub image: ImageSelector,
    /// The folder to write the image's tree to; created when missing.
    #[arg(long)]
    pub apply_path: String,
    /// Check the file's integrity table first.
    #[arg(long)]
    pub check_integrity: bool,
    /// Read back and compare what was written.
    #[arg(long)]
    pub verify: bool,
    /// Where to write the Windows-only metadata (security, attributes, streams, short names).
    #[arg(long)]
    pub metadata_path: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct TestWindowsImageArgs {
    /// The .wim file.
    #[arg(long)]
    pub image_path: String,
}

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Get-WindowsImage",
        synopsis: "Shows the images in a .wim file.",
        description: "Without -Index or -Name lists every image; with one, shows its details as DISM does.",
        positional: &["ImagePath"],
        mandatory: &["ImagePath"],
        pipeline: false,
        examples: &[
            ("containerimage Get-WindowsImage -ImagePath NanoServer.wim", "Lists the images."),
            ("containerimage Get-WindowsImage -ImagePath NanoServer.wim -Index 1", "Details of image 1."),
        ],
        command: command_of::<GetWindowsImageArgs>,
        run: not_yet::<GetWindowsImageArgs>,
    },
    CmdletDef {
        name: "Expand-WindowsImage",
        synopsis: "Applies an image of a .wim file to a folder.",
        description: "Writes the image's tree (directories, files, hard and symbolic links, timestamps) into -ApplyPath, \
                      verifying every blob's SHA-1. Nothing is written outside -ApplyPath.",
        positional: &[],
        mandatory: &["ImagePath", "ApplyPath"],
        pipeline: false,
        examples: &[(
            "containerimage Expand-WindowsImage -ImagePath NanoServer.wim -Index 1 -ApplyPath /srv/nano",
            "Applies image 1.",
        )],
        command: command_of::<ExpandArgs>,
        run: not_yet::<ExpandArgs>,
    },
    CmdletDef {
        name: "Test-WindowsImage",
        synopsis: "Checks a .wim file: integrity table and every blob's SHA-1.",
        description: "",
        positional: &["ImagePath"],
        mandatory: &["ImagePath"],
        pipeline: false,
        examples: &[("containerimage Test-WindowsImage NanoServer.wim", "Checks the file.")],
        command: command_of::<TestWindowsImageArgs>,
        run: not_yet::<TestWindowsImageArgs>,
    },
];
