//! Raw on-disk structures of the WIM format, named as in `WIM-FORMAT.md`.
//!
//! These are plain views of the bytes: nothing here checks that an offset or
//! a size makes sense. The checked readers (`reader`, `resource`, `metadata`)
//! do that.

use binrw::{BinRead, BinReaderExt};
use std::io::Cursor;

/// `MSWIM\0\0\0`: the magic of a normal WIM.
pub const WIM_MAGIC: [u8; 8] = *b"MSWIM\0\0\0";
/// `WLPWM\0\0\0`: the magic of a pipable WIM (wimlib only).
pub const PWM_MAGIC: [u8; 8] = *b"WLPWM\0\0\0";
/// The only header size written by any tool.
pub const HEADER_SIZE: usize = 208;
/// The usual version.
pub const VERSION_DEFAULT: u32 = 0x10D00;
/// The version that may hold solid resources.
pub const VERSION_SOLID: u32 = 0xE00;

/// Header flags (`WIM-FORMAT.md` § Header).
pub mod header_flags {
    pub const COMPRESSION: u32 = 0x2;
    pub const READONLY: u32 = 0x4;
    pub const SPANNED: u32 = 0x8;
    pub const WRITE_IN_PROGRESS: u32 = 0x40;
    pub const RP_FIX: u32 = 0x80;
    pub const COMPRESS_XPRESS: u32 = 0x20000;
    pub const COMPRESS_LZX: u32 = 0x40000;
    pub const COMPRESS_LZMS: u32 = 0x80000;
    pub const COMPRESS_XPRESS2: u32 = 0x200000;
}

/// Resource header flags.
pub mod resource_flags {
    pub const METADATA: u8 = 0x2;
    pub const COMPRESSED: u8 = 0x4;
    pub const SPANNED: u8 = 0x8;
    pub const SOLID: u8 = 0x10;
}

/// The uncompressed size that marks a solid *resource* entry in the blob table.
pub const SOLID_RESOURCE_MAGIC_SIZE: u64 = 0x1_0000_0000;

/// FILE_ATTRIBUTE_* values used by the reader.
pub mod attributes {
    pub const READONLY: u32 = 0x1;
    pub const DIRECTORY: u32 = 0x10;
    pub const REPARSE_POINT: u32 = 0x400;
}

/// Reparse tags translated to symbolic links.
pub const IO_REPARSE_TAG_SYMLINK: u32 = 0xA000_000C;
pub const IO_REPARSE_TAG_MOUNT_POINT: u32 = 0xA000_0003;
/// Dentry reparse flag: the absolute target was not made relative to the
/// image root at capture.
pub const REPARSE_FLAG_NOT_FIXED: u16 = 0x1;

/// Dentry tagged item tags.
pub const TAG_OBJECT_ID: u32 = 1;
pub const TAG_EXTENDED_ATTRIBUTES: u32 = 2;
pub const TAG_WIMLIB_UNIX_DATA: u32 = 0x337D_D873;

/// Resource header: where a resource lives and how big it is (24 bytes).
#[derive(BinRead, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[br(little)]
pub struct ResourceHeader {
    /// Low 7 bytes: size in the WIM; high byte: flags.
    pub size_and_flags: u64,
    /// Offset in the file (or within a solid run).
    pub offset: u64,
    /// Uncompressed size.
    pub uncompressed_size: u64,
}

impl ResourceHeader {
    pub const SIZE: usize = 24;

    pub fn size_in_wim(&self) -> u64 {
        self.size_and_flags & 0x00FF_FFFF_FFFF_FFFF
    }

    pub fn flags(&self) -> u8 {
        (self.size_and_flags >> 56) as u8
    }

    pub fn is_empty(&self) -> bool {
        self.size_in_wim() == 0 && self.offset == 0 && self.uncompressed_size == 0
    }
}

/// The WIM header (208 bytes at offset 0).
#[derive(BinRead, Clone, Debug)]
#[br(little)]
pub struct WimHeader {
    pub magic: [u8; 8],
    pub header_size: u32,
    pub version: u32,
    pub flags: u32,
    pub chunk_size: u32,
    pub guid: [u8; 16],
    pub part_number: u16,
    pub total_parts: u16,
    pub image_count: u32,
    pub blob_table: ResourceHeader,
    pub xml_data: ResourceHeader,
    pub boot_metadata: ResourceHeader,
    pub boot_index: u32,
    pub integrity_table: ResourceHeader,
}

/// One blob table entry (50 bytes).
#[derive(BinRead, Clone, Copy, Debug)]
#[br(little)]
pub struct BlobTableEntry {
    pub resource: ResourceHeader,
    pub part_number: u16,
    pub reference_count: u32,
    pub hash: [u8; 20],
}

impl BlobTableEntry {
    pub const SIZE: usize = 50;
}

/// The fixed start of the integrity table (12 bytes), followed by SHA-1s.
#[derive(BinRead, Clone, Copy, Debug)]
#[br(little)]
pub struct IntegrityTableHeader {
    pub size: u32,
    pub entry_count: u32,
    pub chunk_size: u32,
}

impl IntegrityTableHeader {
    pub const SIZE: usize = 12;
}

/// The fixed start of the security data (8 bytes), followed by u64 sizes.
#[derive(BinRead, Clone, Copy, Debug)]
#[br(little)]
pub struct SecurityDataHeader {
    pub total_length: u32,
    pub count: u32,
}

impl SecurityDataHeader {
    pub const SIZE: usize = 8;
}

/// The fixed part of a directory entry (102 bytes).
#[derive(BinRead, Clone, Copy, Debug)]
#[br(little)]
pub struct DentryFixed {
    pub length: u64,
    pub attributes: u32,
    pub security_id: u32,
    pub subdir_offset: u64,
    pub unused1: [u8; 16],
    pub creation_time: u64,
    pub last_access_time: u64,
    pub last_write_time: u64,
    pub hash: [u8; 20],
    pub unused2: u32,
    /// Reparse tag, or the low half of the hard-link group id.
    pub reparse_tag_or_link_lo: u32,
    /// Reserved u16 + reparse flags u16, or the high half of the link group id.
    pub reparse_flags_or_link_hi: u32,
    pub extra_stream_count: u16,
    pub short_name_length: u16,
    pub name_length: u16,
}

impl DentryFixed {
    pub const SIZE: usize = 102;

    pub fn hard_link_group(&self) -> u64 {
        u64::from(self.reparse_tag_or_link_lo) | (u64::from(self.reparse_flags_or_link_hi) << 32)
    }

    pub fn reparse_tag(&self) -> u32 {
        self.reparse_tag_or_link_lo
    }

    pub fn reparse_flags(&self) -> u16 {
        (self.reparse_flags_or_link_hi >> 16) as u16
    }
}

/// The fixed part of an extra stream entry (38 bytes), followed by the name.
#[derive(BinRead, Clone, Copy, Debug)]
#[br(little)]
pub struct ExtraStreamEntryFixed {
    pub length: u64,
    pub unused: u64,
    pub hash: [u8; 20],
    pub name_length: u16,
}

impl ExtraStreamEntryFixed {
    pub const SIZE: usize = 38;
}

/// The header of a solid resource (16 bytes), followed by one u32
/// compressed size per chunk.
#[derive(BinRead, Clone, Copy, Debug)]
#[br(little)]
pub struct SolidResourceHeader {
    pub uncompressed_size: u64,
    pub chunk_size: u32,
    pub codec: u32,
}

impl SolidResourceHeader {
    pub const SIZE: usize = 16;
}

/// wimlib's UNIX data tagged item payload (mode, uid, gid, rdev).
#[derive(BinRead, Clone, Copy, Debug)]
#[br(little)]
pub struct UnixData {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub rdev: u32,
}

/// Reads a `T` from the start of `bytes`; `None` when `bytes` is too short.
pub fn parse<T>(bytes: &[u8]) -> Option<T>
where
    T: BinRead,
    for<'a> T::Args<'a>: Default,
{
    Cursor::new(bytes).read_le::<T>().ok()
}
