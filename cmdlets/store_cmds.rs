//! The image store: `Install-ContainerImage`, `Install-ContainerOSImage`,
//! `Get-ContainerImage`, `Uninstall-ContainerOSImage`, `Remove-ContainerImage`,
//! `Move-ContainerImageRepository`, `Test-ContainerImage`, and OneGet's
//! `Get-/Install-/Uninstall-Package`.
#![allow(dead_code)] // parameters are read once the bodies land

use crate::cmdlet::{command_of, not_yet, CmdletDef};
use crate::find::VersionArgs;

#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// Image names; wildcards allowed. Omit to read Find-ContainerImage objects from standard input.
    #[arg(long)]
    pub name: Vec<String>,
    #[command(flatten)]
    pub versions: VersionArgs,
    /// Only these registered sources.
    #[arg(long)]
    pub source: Vec<String>,
    /// Install from untrusted sources without asking; reinstall an installed image.
    #[arg(long)]
    pub force: bool,
    /// Show what would be installed, change nothing.
    #[arg(long)]
    pub what_if: bool,
    /// An HTTP proxy URL (overrides HTTPS_PROXY/HTTP_PROXY).
    #[arg(long)]
    pub proxy: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct InstallPackageArgs {
    #[command(flatten)]
    pub install: InstallArgs,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct InstallOsImageArgs {
    /// The .wim file to import.
    #[arg(long)]
    pub wim_path: String,
    /// Reinstall when already installed.
    #[arg(long)]
    pub force: bool,
    /// The image's name (default: from the file name).
    #[arg(long)]
    pub name: Option<String>,
    /// The version to record (default: from the .wim's XML, else the file name).
    #[arg(long)]
    pub version: Option<String>,
    /// The publisher, e.g. CN=Microsoft (the default).
    #[arg(long)]
    pub publisher: Option<String>,
    /// Show what would be installed, change nothing.
    #[arg(long)]
    pub what_if: bool,
}

#[derive(clap::Args, Debug)]
pub struct GetImageArgs {
    /// Name pattern; wildcards allowed.
    #[arg(long)]
    pub name: Option<String>,
    /// Publisher, e.g. CN=Microsoft.
    #[arg(long)]
    pub publisher: Option<String>,
    /// Exactly this version.
    #[arg(long)]
    pub version: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct GetPackageArgs {
    /// Name pattern; wildcards allowed.
    #[arg(long)]
    pub name: Option<String>,
    /// Exactly this version.
    #[arg(long, alias = "version")]
    pub required_version: Option<String>,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    /// The image's full name, e.g. CN=Microsoft_NanoServer_10.0.14300.1010.
    #[arg(long)]
    pub full_name: Option<String>,
    /// The image's name; must match exactly one installed image.
    #[arg(long)]
    pub name: Option<String>,
    /// Do not ask.
    #[arg(long)]
    pub force: bool,
    /// Show what would be removed, change nothing.
    #[arg(long)]
    pub what_if: bool,
}

#[derive(clap::Args, Debug)]
pub struct UninstallPackageArgs {
    /// The image's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Exactly this version.
    #[arg(long, alias = "version")]
    pub required_version: Option<String>,
    /// Do not ask.
    #[arg(long)]
    pub force: bool,
    /// Must be ContainerImage.
    #[arg(long)]
    pub provider_name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    /// Name pattern.
    #[arg(long)]
    pub name: Option<String>,
    /// Publisher.
    #[arg(long)]
    pub publisher: Option<String>,
    /// Exactly this version.
    #[arg(long)]
    pub version: Option<String>,
    /// Do not ask.
    #[arg(long)]
    pub force: bool,
    /// Show what would be removed, change nothing.
    #[arg(long)]
    pub what_if: bool,
}

#[derive(clap::Args, Debug)]
pub struct MoveArgs {
    /// The new location of the store; must not exist.
    #[arg(long)]
    pub path: String,
}

#[derive(clap::Args, Debug)]
pub struct TestImageArgs {
    /// Name pattern; wildcards allowed.
    #[arg(long)]
    pub name: Option<String>,
}

pub static CMDLETS: &[CmdletDef] = &[
    CmdletDef {
        name: "Install-ContainerImage",
        synopsis: "Finds, downloads, verifies and installs images from the registered sources.",
        description: "Installing from an untrusted source asks first on a terminal; without one it needs -Force.",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: true,
        examples: &[
            ("containerimage Install-ContainerImage -Name NanoServer", "Installs the newest Nano Server."),
            (
                "containerimage Find-ContainerImage '*nano*' | containerimage Install-ContainerImage",
                "Installs what Find found.",
            ),
        ],
        command: command_of::<InstallArgs>,
        run: not_yet::<InstallArgs>,
    },
    CmdletDef {
        name: "Install-Package",
        synopsis: "Install-ContainerImage under OneGet's generic name (-ProviderName ContainerImage).",
        description: "",
        positional: &["Name"],
        mandatory: &["Name"],
        pipeline: true,
        examples: &[("containerimage Install-Package -ProviderName ContainerImage -Name NanoServer", "Installs it.")],
        command: command_of::<InstallPackageArgs>,
        run: not_yet::<InstallPackageArgs>,
    },
    CmdletDef {
        name: "Install-ContainerOSImage",
        synopsis: "Imports a .wim file into the image store (offline hosts).",
        description: "Name and version come from the file name and the .wim's XML unless given.",
        positional: &["WimPath"],
        mandatory: &["WimPath"],
        pipeline: false,
        examples: &[
            ("containerimage Install-ContainerOSImage -WimPath /media/NanoServer.wim", "Imports the file."),
            (
                "containerimage Install-ContainerOSImage ./base.wim -Name Base -Version 1.0 -Publisher Demo",
                "Imports it as CN=Demo_Base_1.0.0.0.",
            ),
        ],
        command: command_of::<InstallOsImageArgs>,
        run: not_yet::<InstallOsImageArgs>,
    },
    CmdletDef {
        name: "Get-ContainerImage",
        synopsis: "Lists installed images.",
        description: "",
        positional: &["Name", "Publisher", "Version"],
        mandatory: &[],
        pipeline: false,
        examples: &[
            ("containerimage Get-ContainerImage", "Lists every installed image."),
            ("containerimage Get-ContainerImage 'Nano*' -OutputFormat Json", "As JSON Lines with every field."),
        ],
        command: command_of::<GetImageArgs>,
        run: not_yet::<GetImageArgs>,
    },
    CmdletDef {
        name: "Get-Package",
        synopsis: "Get-ContainerImage under OneGet's generic name (-ProviderName ContainerImage).",
        description: "",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[("containerimage Get-Package -ProviderName ContainerImage", "Lists installed images.")],
        command: command_of::<GetPackageArgs>,
        run: not_yet::<GetPackageArgs>,
    },
    CmdletDef {
        name: "Uninstall-ContainerOSImage",
        synopsis: "Removes an installed OS image.",
        description: "An image other images depend on cannot be removed; the error names them.",
        positional: &["FullName"],
        mandatory: &[],
        pipeline: true,
        examples: &[
            (
                "containerimage Uninstall-ContainerOSImage CN=Microsoft_NanoServer_10.0.14300.1010",
                "Removes that image.",
            ),
            (
                "containerimage Get-ContainerImage Nano* | containerimage Uninstall-ContainerOSImage",
                "Removes what Get listed.",
            ),
        ],
        command: command_of::<UninstallArgs>,
        run: not_yet::<UninstallArgs>,
    },
    CmdletDef {
        name: "Uninstall-Package",
        synopsis: "Uninstall-ContainerOSImage under OneGet's generic name (-ProviderName ContainerImage).",
        description: "",
        positional: &["Name"],
        mandatory: &[],
        pipeline: true,
        examples: &[("containerimage Uninstall-Package -ProviderName ContainerImage -Name NanoServer", "Removes it.")],
        command: command_of::<UninstallPackageArgs>,
        run: not_yet::<UninstallPackageArgs>,
    },
    CmdletDef {
        name: "Remove-ContainerImage",
        synopsis: "Removes installed images that are not OS images.",
        description: "OS images are removed with Uninstall-ContainerOSImage.",
        positional: &["Name", "Publisher", "Version"],
        mandatory: &[],
        pipeline: true,
        examples: &[("containerimage Remove-ContainerImage MyApp", "Removes the image MyApp.")],
        command: command_of::<RemoveArgs>,
        run: not_yet::<RemoveArgs>,
    },
    CmdletDef {
        name: "Move-ContainerImageRepository",
        synopsis: "Moves the image store to a new folder.",
        description: "The folder must not exist. An interrupted move leaves the store usable at one of the two places.",
        positional: &["Path"],
        mandatory: &["Path"],
        pipeline: false,
        examples: &[("containerimage Move-ContainerImageRepository /data/images", "Moves the store.")],
        command: command_of::<MoveArgs>,
        run: not_yet::<MoveArgs>,
    },
    CmdletDef {
        name: "Test-ContainerImage",
        synopsis: "Re-hashes installed files against what was recorded at install.",
        description: "",
        positional: &["Name"],
        mandatory: &[],
        pipeline: false,
        examples: &[("containerimage Test-ContainerImage", "Checks every installed image.")],
        command: command_of::<TestImageArgs>,
        run: not_yet::<TestImageArgs>,
    },
];
