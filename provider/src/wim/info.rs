//! Typed view of a WIM's XML data (`<WIM>` with one `<IMAGE>` per image).

/// The whole XML document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WimInfo {
    pub total_bytes: Option<u64>,
    /// In index order (index 1 first).
    pub images: Vec<ImageInfo>,
}

/// One `<IMAGE INDEX="n">`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageInfo {
    pub index: u32,
    pub name: Option<String>,
    pub description: Option<String>,
    pub display_name: Option<String>,
    pub display_description: Option<String>,
    pub flags: Option<String>,
    pub dir_count: Option<u64>,
    pub file_count: Option<u64>,
    pub total_bytes: Option<u64>,
    pub hard_link_bytes: Option<u64>,
    /// FILETIME (100 ns units since 1601-01-01 UTC).
    pub creation_time: Option<u64>,
    pub last_modification_time: Option<u64>,
    pub windows: Option<WindowsInfo>,
}

/// The `<WINDOWS>` block of an image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowsInfo {
    /// 0 x86, 5 ARM, 6 ia64, 9 x64, 12 ARM64.
    pub arch: Option<u32>,
    pub product_name: Option<String>,
    pub edition_id: Option<String>,
    pub installation_type: Option<String>,
    pub product_type: Option<String>,
    pub product_suite: Option<String>,
    pub languages: Vec<String>,
    pub default_language: Option<String>,
    pub version: Option<WindowsVersion>,
    pub system_root: Option<String>,
}

/// `<VERSION>`: MAJOR.MINOR.BUILD.SPBUILD (and SPLEVEL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowsVersion {
    pub major: u32,
    pub minor: u32,
    pub build: u32,
    pub sp_build: u32,
    pub sp_level: Option<u32>,
}

impl WindowsVersion {
    pub fn to_version(&self) -> crate::version::Version {
        crate::version::Version::from_parts([self.major, self.minor, self.build, self.sp_build])
    }
}

/// The architecture name DISM shows for an `<ARCH>` number.
pub fn arch_name(arch: u32) -> &'static str {
    match arch {
        0 => "x86",
        5 => "arm",
        6 => "ia64",
        9 => "x64",
        12 => "arm64",
        _ => "unknown",
    }
}
