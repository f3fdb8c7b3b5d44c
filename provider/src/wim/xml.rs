//! The WIM's XML data: UTF-16LE text with a BOM, parsed into [`WimInfo`].

use quick_xml::events::Event;
use quick_xml::Reader;

use super::info::{ImageInfo, WimInfo, WindowsInfo, WindowsVersion};

#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("the XML data is not UTF-16LE text")]
    Encoding,
    #[error("the XML data is malformed")]
    Syntax(#[source] quick_xml::Error),
    #[error("the XML data has an <IMAGE> with a missing or bad INDEX")]
    BadIndex,
    #[error("the XML data nests elements more than {MAX_DEPTH} deep")]
    TooDeep,
}

/// Deepest element nesting accepted. WIM XML data nests five levels
/// (`WIM/IMAGE/WINDOWS/VERSION/MAJOR`); anything far deeper is hostile.
pub const MAX_DEPTH: usize = 64;

/// Deepest level whose text is used (`WIM/IMAGE/WINDOWS/VERSION/MAJOR`).
const FIELD_DEPTH: usize = 5;

/// Decodes UTF-16LE bytes (with or without a BOM) into a string.
pub fn decode_utf16le(bytes: &[u8]) -> Result<String, XmlError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(XmlError::Encoding);
    }
    let units = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    let mut text: String = char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| XmlError::Encoding)?;
    if text.starts_with('\u{FEFF}') {
        text.remove(0);
    }
    // Some writers add a terminating NUL.
    while text.ends_with('\0') {
        text.pop();
    }
    Ok(text)
}

/// Parses the XML data bytes of a WIM.
pub fn parse(bytes: &[u8]) -> Result<WimInfo, XmlError> {
    let text = decode_utf16le(bytes)?;
    parse_str(&text)
}

fn parse_number(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else {
        t.parse().ok()
    }
}

fn parse_u32(text: &str) -> Option<u32> {
    parse_number(text).and_then(|v| u32::try_from(v).ok())
}

/// Parses the XML text of a WIM, in time linear in its length: every
/// element costs the same whatever its depth, and nesting past
/// [`MAX_DEPTH`] is refused.
pub fn parse_str(text: &str) -> Result<WimInfo, XmlError> {
    let mut reader = Reader::from_str(text);
    let mut info = WimInfo::default();
    let mut path: Vec<String> = Vec::new();
    // Time parts being collected: (high, low).
    let mut time_parts: (Option<u32>, Option<u32>) = (None, None);
    let mut version = WindowsVersion::default();
    let mut have_version = false;

    loop {
        let event = reader.read_event().map_err(XmlError::Syntax)?;
        match event {
            Event::Start(start) => {
                if path.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let name = String::from_utf8_lossy(start.name().as_ref()).to_ascii_uppercase();
                if name == "IMAGE" && path.len() == 1 {
                    let mut index = None;
                    for attr in start.attributes().flatten() {
                        if attr.key.as_ref().eq_ignore_ascii_case(b"INDEX") {
                            let value = String::from_utf8_lossy(&attr.value).into_owned();
                            index = parse_u32(&value);
                        }
                    }
                    let index = index.ok_or(XmlError::BadIndex)?;
                    info.images.push(ImageInfo {
                        index,
                        ..ImageInfo::default()
                    });
                }
                if name == "WINDOWS" && path.len() == 2 && path[1] == "IMAGE" {
                    if let Some(image) = info.images.last_mut() {
                        image.windows.get_or_insert_with(WindowsInfo::default);
                    }
                }
                if name == "VERSION" && path.len() == 3 && path[2] == "WINDOWS" {
                    version = WindowsVersion::default();
                    have_version = true;
                }
                if name == "CREATIONTIME" || name == "LASTMODIFICATIONTIME" {
                    time_parts = (None, None);
                }
                path.push(name);
            }
            Event::End(_) => {
                let closed = path.pop();
                match closed.as_deref() {
                    Some("CREATIONTIME") | Some("LASTMODIFICATIONTIME") if path.len() == 2 => {
                        if let (Some(image), (Some(hi), Some(lo))) =
                            (info.images.last_mut(), time_parts)
                        {
                            let t = (u64::from(hi) << 32) | u64::from(lo);
                            if closed.as_deref() == Some("CREATIONTIME") {
                                image.creation_time = Some(t);
                            } else {
                                image.last_modification_time = Some(t);
                            }
                        }
                    }
                    Some("VERSION") if path.len() == 3 && have_version => {
                        if let Some(w) = info
                            .images
                            .last_mut()
                            .and_then(|image| image.windows.as_mut())
                        {
                            w.version = Some(version);
                        }
                        have_version = false;
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                let value = match t.unescape() {
                    Ok(v) => v.into_owned(),
                    Err(_) => String::from_utf8_lossy(&t).into_owned(),
                };
                set_field(&mut info, &path, &value, &mut time_parts, &mut version);
            }
            Event::CData(t) => {
                let value = String::from_utf8_lossy(&t).into_owned();
                set_field(&mut info, &path, &value, &mut time_parts, &mut version);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    info.images.sort_by_key(|i| i.index);
    Ok(info)
}

fn set_field(
    info: &mut WimInfo,
    path: &[String],
    value: &str,
    time_parts: &mut (Option<u32>, Option<u32>),
    version: &mut WindowsVersion,
) {
    if path.len() > FIELD_DEPTH {
        return;
    }
    let mut buf = [""; FIELD_DEPTH];
    for (slot, name) in buf.iter_mut().zip(path) {
        *slot = name.as_str();
    }
    let names = buf.get(..path.len()).unwrap_or(&[]);
    match names {
        ["WIM", "TOTALBYTES"] => info.total_bytes = parse_number(value),
        ["WIM", "IMAGE", rest @ ..] => {
            let Some(image) = info.images.last_mut() else {
                return;
            };
            set_image_field(image, rest, value, time_parts, version);
        }
        _ => {}
    }
}

fn set_image_field(
    image: &mut ImageInfo,
    rest: &[&str],
    value: &str,
    time_parts: &mut (Option<u32>, Option<u32>),
    version: &mut WindowsVersion,
) {
    let text = || Some(value.to_string());
    match rest {
        ["NAME"] => image.name = text(),
        ["DESCRIPTION"] => image.description = text(),
        ["DISPLAYNAME"] => image.display_name = text(),
        ["DISPLAYDESCRIPTION"] => image.display_description = text(),
        ["FLAGS"] => image.flags = text(),
        ["DIRCOUNT"] => image.dir_count = parse_number(value),
        ["FILECOUNT"] => image.file_count = parse_number(value),
        ["TOTALBYTES"] => image.total_bytes = parse_number(value),
        ["HARDLINKBYTES"] => image.hard_link_bytes = parse_number(value),
        ["CREATIONTIME" | "LASTMODIFICATIONTIME", "HIGHPART"] => time_parts.0 = parse_u32(value),
        ["CREATIONTIME" | "LASTMODIFICATIONTIME", "LOWPART"] => time_parts.1 = parse_u32(value),
        ["WINDOWS", field @ ..] => {
            let w = image.windows.get_or_insert_with(WindowsInfo::default);
            match field {
                ["ARCH"] => w.arch = parse_u32(value),
                ["PRODUCTNAME"] => w.product_name = text(),
                ["EDITIONID"] => w.edition_id = text(),
                ["INSTALLATIONTYPE"] => w.installation_type = text(),
                ["PRODUCTTYPE"] => w.product_type = text(),
                ["PRODUCTSUITE"] => w.product_suite = text(),
                ["SYSTEMROOT"] => w.system_root = text(),
                ["LANGUAGES", "LANGUAGE"] => w.languages.push(value.to_string()),
                ["LANGUAGES", "DEFAULT"] => w.default_language = text(),
                ["VERSION", part] => {
                    let n = parse_u32(value).unwrap_or(0);
                    match *part {
                        "MAJOR" => version.major = n,
                        "MINOR" => version.minor = n,
                        "BUILD" => version.build = n,
                        "SPBUILD" => version.sp_build = n,
                        "SPLEVEL" => version.sp_level = Some(n),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<WIM><TOTALBYTES>2652</TOTALBYTES><IMAGE INDEX="1"><DIRCOUNT>4</DIRCOUNT><FILECOUNT>8</FILECOUNT><TOTALBYTES>276</TOTALBYTES><HARDLINKBYTES>6</HARDLINKBYTES><CREATIONTIME><HIGHPART>0x01DC5D18</HIGHPART><LOWPART>0x6D1F3A9E</LOWPART></CREATIONTIME><LASTMODIFICATIONTIME><HIGHPART>0x01DC5D18</HIGHPART><LOWPART>0x6D1F3A9E</LOWPART></LASTMODIFICATIONTIME><WINDOWS><ARCH>9</ARCH><PRODUCTNAME>Microsoft&#174; Windows&#174; Operating System</PRODUCTNAME><EDITIONID>ServerDatacenterNano</EDITIONID><INSTALLATIONTYPE>Nano Server</INSTALLATIONTYPE><PRODUCTTYPE>ServerNT</PRODUCTTYPE><LANGUAGES><LANGUAGE>en-US</LANGUAGE><DEFAULT>en-US</DEFAULT></LANGUAGES><VERSION><MAJOR>10</MAJOR><MINOR>0</MINOR><BUILD>14300</BUILD><SPBUILD>1010</SPBUILD><SPLEVEL>0</SPLEVEL></VERSION><SYSTEMROOT>WINDOWS</SYSTEMROOT></WINDOWS><NAME>src</NAME><UNKNOWN>x</UNKNOWN></IMAGE></WIM>"#;

    #[test]
    fn parses_image_fields() {
        let info = parse_str(SAMPLE).expect("sample parses");
        assert_eq!(info.total_bytes, Some(2652));
        assert_eq!(info.images.len(), 1);
        let image = &info.images[0];
        assert_eq!(image.index, 1);
        assert_eq!(image.name.as_deref(), Some("src"));
        assert_eq!(image.dir_count, Some(4));
        assert_eq!(image.file_count, Some(8));
        assert_eq!(image.creation_time, Some(0x01DC_5D18_6D1F_3A9E));
        let w = image.windows.as_ref().expect("WINDOWS block");
        assert_eq!(w.arch, Some(9));
        assert_eq!(
            w.product_name.as_deref(),
            Some("Microsoft\u{ae} Windows\u{ae} Operating System")
        );
        assert_eq!(w.languages, vec!["en-US".to_string()]);
        assert_eq!(w.default_language.as_deref(), Some("en-US"));
        let v = w.version.expect("VERSION block");
        assert_eq!(
            (v.major, v.minor, v.build, v.sp_build),
            (10, 0, 14300, 1010)
        );
    }

    #[test]
    fn decodes_utf16_with_bom() {
        let mut bytes = vec![0xFF, 0xFE];
        for u in "<WIM></WIM>".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(parse(&bytes).expect("empty WIM parses"), WimInfo::default());
        assert!(matches!(parse(&bytes[..3]), Err(XmlError::Encoding)));
    }

    #[test]
    fn deep_nesting_is_refused_quickly() {
        let depth = 200_000;
        let text = format!(
            "<WIM>{}{}</WIM>",
            "<A>x".repeat(depth),
            "</A>".repeat(depth)
        );
        assert!(matches!(parse_str(&text), Err(XmlError::TooDeep)));
        // Nesting just under the limit is fine, however long the text.
        let ok = format!(
            "<WIM>{}{}</WIM>",
            "<A>x".repeat(MAX_DEPTH - 1),
            "</A>".repeat(MAX_DEPTH - 1)
        );
        assert!(parse_str(&ok).is_ok());
        let wide = format!("<WIM>{}</WIM>", "<A><B><C>t</C></B></A>".repeat(100_000));
        assert!(parse_str(&wide).is_ok());
    }

    #[test]
    fn malformed_xml_is_an_error() {
        assert!(parse_str("<WIM><IMAGE INDEX=\"x\"></IMAGE></WIM>").is_err());
        assert!(parse_str("<WIM><IMAGE INDEX=\"1\"></WIM>").is_err());
    }
}
