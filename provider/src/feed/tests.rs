use std::path::PathBuf;

use super::*;

const SHA: &str = "3f1c000000000000000000000000000000000000000000000000000000000a9e";

fn feed_xml(images: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <ContainerImageFeed xmlns=\"urn:containerimage:feed:1\">\n{images}</ContainerImageFeed>\n"
    )
}

fn image(name: &str, version: &str) -> String {
    format!(
        "  <Image>\n    <Name>{name}</Name>\n    <Version>{version}</Version>\n    \
         <Size>42</Size>\n    <Sha256>{SHA}</Sha256>\n    <Location>{name}.wim</Location>\n  </Image>\n"
    )
}

fn err_of(text: &str) -> String {
    parse_records(text.as_bytes(), "test-feed")
        .expect_err("the feed must be rejected")
        .to_string()
}

#[test]
fn reads_every_field_and_resolves_locations() {
    let text = feed_xml(
        "  <Image>\n    <Name>NanoServer</Name>\n    <Version>10.0.14300.1010</Version>\n    \
         <Publisher>CN=Microsoft</Publisher>\n    <Description>Nano &amp; small</Description>\n    \
         <Architecture>amd64</Architecture>\n    <Size>260046848</Size>\n    \
         <Sha256>3F1C000000000000000000000000000000000000000000000000000000000A9E</Sha256>\n    \
         <Location>NanoServer-10-0-14300-1010.wim</Location>\n    \
         <Location>https://mirror.test/nano.wim</Location>\n  </Image>\n",
    );
    let base = FeedBase::Http("https://feeds.test/a/feed.xml".parse().expect("url"));
    let entries = parse_entries(text.as_bytes(), "f", &base, "Gallery").expect("valid feed");
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.name, "NanoServer");
    assert_eq!(e.version.to_string(), "10.0.14300.1010");
    assert_eq!(e.publisher.as_deref(), Some("CN=Microsoft"));
    assert_eq!(e.description.as_deref(), Some("Nano & small"));
    assert_eq!(e.architecture.as_deref(), Some("amd64"));
    assert_eq!(e.size, Some(260046848));
    assert_eq!(e.sha256_hex().as_deref(), Some(SHA));
    assert_eq!(e.source, "Gallery");
    let locs: Vec<String> = e.locations.iter().map(|l| l.to_string()).collect();
    assert_eq!(
        locs,
        [
            "https://feeds.test/a/NanoServer-10-0-14300-1010.wim",
            "https://mirror.test/nano.wim"
        ]
    );

    let folder = FeedBase::Folder(PathBuf::from("/srv/feed"));
    let entries = parse_entries(text.as_bytes(), "f", &folder, "Local").expect("valid");
    assert_eq!(
        entries[0].locations[0],
        Location::Path(PathBuf::from("/srv/feed/NanoServer-10-0-14300-1010.wim"))
    );
}

#[test]
fn optional_fields_may_be_missing_or_empty_and_unknown_ones_are_ignored() {
    let text = feed_xml(&format!(
        "  <Extra a=\"1\"><Deep>x</Deep></Extra>\n  <Image future=\"yes\">\n    <Name>A</Name>\n    \
         <Description/>\n    <Publisher>  </Publisher>\n    <Tags><Tag>t</Tag></Tags>\n    \
         <Version>1.0</Version>\n    <Size>1</Size>\n    <Sha256>{SHA}</Sha256>\n    \
         <Location><![CDATA[a b.wim]]></Location>\n  </Image>\n{}",
        image("B", "2")
    ));
    let records = parse_records(text.as_bytes(), "f").expect("valid");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].description, None);
    assert_eq!(records[0].publisher, None);
    assert_eq!(records[0].locations, ["a b.wim"]);
    assert_eq!(records[1].name, "B");
}

#[test]
fn broken_feeds_name_the_feed_the_line_and_the_field() {
    // (feed text, expected fragments of the message)
    let no_size = feed_xml(&format!(
        "  <Image>\n    <Name>A</Name>\n    <Version>1.0</Version>\n    <Sha256>{SHA}</Sha256>\n    \
         <Location>a.wim</Location>\n  </Image>\n"
    ));
    let cases: Vec<(String, &[&str])> = vec![
        (
            feed_xml(&format!("{}{}", image("A", "1.0"), image("B", "1.x"))),
            &["test-feed", "line 12", "Version", "'1.x' is not a version"],
        ),
        (
            feed_xml(&image("A", "1.0").replace(SHA, "abc")),
            &["line 7", "Sha256", "64 hexadecimal digits"],
        ),
        (no_size, &["line 3", "Size", "has no Size"]),
        (
            feed_xml(&image("A", "1.0").replace("<Size>42", "<Size>-4")),
            &["line 6", "Size", "'-4' is not a size"],
        ),
        (
            feed_xml(&image("A", "1.0").replace("<Location>A.wim</Location>", "")),
            &["line 3", "Location"],
        ),
        (
            feed_xml(&image("../x", "1.0")),
            &["line 4", "Name", "cannot be used as an image name"],
        ),
        (
            feed_xml(&image("A", "1.0")).replace("</Version>", "</Versio>"),
            &["test-feed", "line 5"],
        ),
        (
            "<Other/>".to_string(),
            &["line 1", "expected <ContainerImageFeed"],
        ),
        (
            "<ContainerImageFeed xmlns=\"urn:other\"/>".to_string(),
            &["namespace is 'urn:other'"],
        ),
        ("".to_string(), &["line 1", "no <ContainerImageFeed>"]),
        (
            feed_xml(&image("A", "1.0")).replace("  </Image>\n</ContainerImageFeed>\n", ""),
            &["not closed"],
        ),
        (
            feed_xml(&image("A", "1.0").replace("<Name>A</Name>", "<Name>A</Name><Name>B</Name>")),
            &["line 4", "Name", "more than once"],
        ),
    ];
    for (text, fragments) in cases {
        let message = err_of(&text);
        for f in fragments {
            assert!(
                message.contains(f),
                "expected {f:?} in {message:?}\nfeed:\n{text}"
            );
        }
    }
}

#[test]
fn json_index_of_the_original_provider() {
    let text = r#"[
  {"Name": "NanoServer", "Version": "10.0.14300.1010", "Description": "Nano", "SasToken": "https://blob.test/nano.wim?sig=1"},
  {"Name": "WindowsServerCore", "Version": "10.0.14300.1000", "Description": null,
   "SasToken": "core.wim", "Extra": 1}
]"#;
    let base = FeedBase::Http("https://idx.test/dir/index.json".parse().expect("url"));
    let entries = parse_entries(text.as_bytes(), "idx", &base, "Old").expect("valid index");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].size, None);
    assert_eq!(entries[0].sha256, None);
    assert_eq!(entries[0].description.as_deref(), Some("Nano"));
    assert_eq!(
        entries[0].locations[0].to_string(),
        "https://blob.test/nano.wim?sig=1"
    );
    assert_eq!(
        entries[1].locations[0].to_string(),
        "https://idx.test/dir/core.wim"
    );
    assert_eq!(entries[1].description, None);

    let bad = "[\n {\"Name\": \"A\", \"Version\": \"1\", \"SasToken\": \"a\"},\n {\"Name\": \"B\",\n  \"Version\": \"x\", \"SasToken\": \"b\"}\n]";
    let message = err_of(bad);
    assert!(
        message.contains("line 3") && message.contains("Version"),
        "{message}"
    );
    let message = err_of("[\n {\"Name\": \"A\", \"Version\": \"1\"}\n]");
    assert!(
        message.contains("line 2") && message.contains("SasToken"),
        "{message}"
    );
    let message = err_of("[\n {\"Name\": \"A\",\n");
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn written_feeds_read_back_and_upsert_replaces_or_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = |name: &str, version: &str, location: &str| FeedRecord {
        name: name.into(),
        version: version.parse().expect("version"),
        publisher: Some("CN=Demo <&>".into()),
        description: Some("\"quoted\" & 'more'".into()),
        architecture: None,
        size: Some(7),
        sha256: Some([0xab; 32]),
        locations: vec![location.into()],
        line: 0,
    };
    upsert_entry(dir.path(), rec("A", "1.0", "A-1-0.wim"), None).expect("create");
    upsert_entry(dir.path(), rec("B", "2.0", "sub/B.wim"), None).expect("append");
    let mut replaced = rec("a", "1.0.0.0", "A-new.wim");
    replaced.size = Some(8);
    upsert_entry(dir.path(), replaced, None).expect("replace");

    let bytes = std::fs::read(dir.path().join(FEED_FILE_NAME)).expect("feed written");
    let records = parse_records(&bytes, "written").expect("the written feed is valid");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].name, "a");
    assert_eq!(records[0].size, Some(8));
    assert_eq!(records[0].locations, ["A-new.wim"]);
    assert_eq!(records[0].publisher.as_deref(), Some("CN=Demo <&>"));
    assert_eq!(
        records[0].description.as_deref(),
        Some("\"quoted\" & 'more'")
    );
    assert_eq!(records[1].locations, ["sub/B.wim"]);

    // A damaged manifest is reported and left alone.
    std::fs::write(
        dir.path().join(FEED_FILE_NAME),
        "<ContainerImageFeed><Image>",
    )
    .expect("w");
    assert!(upsert_entry(dir.path(), rec("C", "1", "c.wim"), None).is_err());
    let kept = std::fs::read_to_string(dir.path().join(FEED_FILE_NAME)).expect("read");
    assert_eq!(kept, "<ContainerImageFeed><Image>");

    // So is a JSON index: it has no sizes or hashes to write back.
    let index = r#"[{"Name": "A", "Version": "1", "SasToken": "a.wim"}]"#;
    std::fs::write(dir.path().join(FEED_FILE_NAME), index).expect("w");
    let err = upsert_entry(dir.path(), rec("C", "1", "c.wim"), None).expect_err("refused");
    assert!(err.to_string().contains("JSON index"), "{err}");
    let kept = std::fs::read_to_string(dir.path().join(FEED_FILE_NAME)).expect("read");
    assert_eq!(kept, index);
}

#[test]
fn a_large_feed_parses() {
    let images: String = (0..10_000)
        .map(|i| image(&format!("Img{}", i % 100), &format!("1.0.{i}")))
        .collect();
    let records = parse_records(feed_xml(&images).as_bytes(), "big").expect("valid");
    assert_eq!(records.len(), 10_000);
    assert_eq!(records[9_999].line, 3 + 9_999 * 7);
}

#[test]
fn the_example_feeds_in_manifests_are_valid() {
    let feed = include_str!("../../../manifests/examples/feed.xml");
    let records = parse_records(feed.as_bytes(), "feed.xml").expect("example feed");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].locations.len(), 2);
    let minimal = include_str!("../../../manifests/examples/minimal.xml");
    assert_eq!(
        parse_records(minimal.as_bytes(), "minimal.xml")
            .expect("minimal")
            .len(),
        1
    );
    let index = include_str!("../../../manifests/examples/index.json");
    assert_eq!(
        parse_records(index.as_bytes(), "index.json")
            .expect("index")
            .len(),
        2
    );
}

#[test]
fn truncated_or_mangled_feeds_are_errors_never_panics() {
    let xml = feed_xml(&format!("{}{}", image("A", "1.0"), image("B", "2.0")));
    let json = r#"[{"Name": "A", "Version": "1.0", "Description": "d", "SasToken": "https://x.test/a.wim"}]"#;
    for doc in [xml.as_bytes(), json.as_bytes()] {
        for cut in 0..doc.len() {
            let truncated = doc.get(..cut).unwrap_or_default();
            // Every prefix short of the whole document is incomplete.
            let result = parse_records(truncated, "cut");
            if cut < doc.trim_ascii_end().len() {
                let e = result.expect_err("an incomplete feed is rejected");
                assert!(e.to_string().contains("cut"), "errors name the feed: {e}");
            }
        }
        // Replace each byte with characters that matter to the parsers.
        for at in 0..doc.len() {
            for b in [b'<', b'>', b'&', b'"', b'/', 0xff, b'\n', 0] {
                let mut mangled = doc.to_vec();
                if let Some(slot) = mangled.get_mut(at) {
                    *slot = b;
                }
                let _ = parse_records(&mangled, "mangled");
            }
        }
    }
}

#[test]
fn upserts_sign_with_a_key_and_report_a_signature_they_made_stale() {
    use crate::signing::{PinnedKey, SigningKey};

    let dir = tempfile::tempdir().expect("tempdir");
    let keys = tempfile::tempdir().expect("tempdir");
    let pair = minisign::KeyPair::generate_unencrypted_keypair().expect("keypair");
    let sk_path = keys.path().join("k.key");
    std::fs::write(&sk_path, pair.sk.to_box(None).expect("box").into_string()).expect("key");
    let key = SigningKey::open(&sk_path, &mut || Err("no password".into())).expect("open");
    let pinned = PinnedKey::from_base64(&pair.pk.to_base64()).expect("public key");
    let rec = |name: &str| FeedRecord {
        name: name.into(),
        version: "1.0".parse().expect("version"),
        publisher: None,
        description: None,
        architecture: None,
        size: Some(7),
        sha256: Some([0xab; 32]),
        locations: vec![format!("{name}.wim")],
        line: 0,
    };
    let feed = dir.path().join(FEED_FILE_NAME);
    let sig = dir.path().join("feed.xml.minisig");
    let verify = || {
        pinned.verify(
            &std::fs::read(&feed).expect("feed"),
            &std::fs::read(&sig).expect("signature"),
            "test",
        )
    };

    assert_eq!(
        upsert_entry(dir.path(), rec("A"), None).expect("unsigned"),
        FeedSignature::Untouched
    );
    assert!(!sig.exists());
    assert_eq!(
        upsert_entry(dir.path(), rec("B"), Some(&key)).expect("signed"),
        FeedSignature::Signed(sig.clone())
    );
    verify().expect("the signature is of the bytes written");
    // The same entry again changes no byte: the signature still holds.
    assert_eq!(
        upsert_entry(dir.path(), rec("B"), None).expect("unchanged"),
        FeedSignature::Untouched
    );
    verify().expect("still valid");
    assert_eq!(
        upsert_entry(dir.path(), rec("C"), None).expect("changed"),
        FeedSignature::Stale(sig.clone())
    );
    assert!(verify().is_err(), "a changed feed no longer verifies");
}

#[test]
fn saved_and_cached_wim_names_use_dashed_versions_and_refuse_separators() {
    let entry = |name: &str| FeedEntry {
        name: name.into(),
        version: "10.0.14300.1010".parse().expect("version"),
        publisher: None,
        description: None,
        architecture: None,
        size: None,
        sha256: None,
        locations: Vec::new(),
        source: String::new(),
    };
    assert_eq!(
        entry("NanoServer").wim_file_name().expect("name"),
        "NanoServer-10-0-14300-1010.wim"
    );
    for bad in ["../evil", "a\\b", "a/b", "", "c:x"] {
        assert!(entry(bad).wim_file_name().is_err(), "{bad:?}");
    }
}
