//! Tags and docker's image verbs over the store: `images`, `tag`, `rmi`,
//! `history`, and the cmdlets Add-ContainerImageTag and
//! Get-ContainerImageHistory.

use super::*;
use crate::common::stdout;

fn lines(o: &std::process::Output) -> Vec<String> {
    stdout(o).lines().map(str::to_string).collect()
}

/// `images` rows as (REPOSITORY, TAG, IMAGE ID), header checked.
fn image_rows(home: &Path) -> Vec<(String, String, String)> {
    let o = run(home, &["images"]);
    assert_exit(&o, 0);
    let all = lines(&o);
    let header = all.first().expect("a header line");
    let words: Vec<&str> = header
        .split("   ")
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    assert_eq!(
        words,
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        "{header}"
    );
    all[1..]
        .iter()
        .map(|l| {
            let cells: Vec<&str> = l
                .split("   ")
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .collect();
            (
                cells[0].to_string(),
                cells[1].to_string(),
                cells[2].to_string(),
            )
        })
        .collect()
}

#[test]
fn images_tag_rmi_and_history_work_as_in_docker() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let wim = make_wim(
        tmp.path(),
        "NanoServer-10-0-14300-1010.wim",
        Some("10.0.14300.1010"),
        false,
    );
    install_os_image(&home, &wim);
    let id = get_images(&home)[0]["Id"].as_str().expect("Id").to_string();
    let short: String = id.chars().take(12).collect();
    assert_eq!(
        image_rows(&home),
        [("nanoserver".into(), "10.0.14300.1010".into(), short.clone())]
    );
    assert_eq!(
        get_images(&home)[0]["RepoTags"],
        serde_json::json!(["nanoserver:10.0.14300.1010"])
    );

    // tag by an Id prefix, by a tag, as the seeds' docker tag did.
    assert_exit(&run(&home, &["tag", &id[..6], "nanoserver:latest"]), 0);
    let o = run(
        &home,
        &[
            "Add-ContainerImageTag",
            "nanoserver",
            "127.0.0.1:5000/windows/nano:ltsc",
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(
        json_lines(&o)[0]["RepoTags"]
            .as_array()
            .expect("tags")
            .len(),
        3
    );
    assert_eq!(image_rows(&home).len(), 3);
    let o = run(&home, &["images", "-q"]);
    assert_eq!(
        lines(&o),
        std::slice::from_ref(&short),
        "one ID per image, not per tag"
    );
    let o = run(&home, &["images", "--no-trunc", "nanoserver:latest"]);
    assert_eq!(lines(&o).len(), 2, "{}", stdout(&o));
    assert!(stdout(&o).contains(&format!("sha256:{id}")));

    // history, both spellings.
    let o = run(&home, &["history", "nanoserver:latest"]);
    assert_exit(&o, 0);
    assert!(lines(&o)[1].starts_with(&short), "{}", stdout(&o));
    assert!(stdout(&o).contains("Apply image 10.0.14300.1010"));
    let o = run(
        &home,
        &[
            "Get-ContainerImageHistory",
            "-Image",
            "CN=Microsoft_NanoServer_10.0.14300.1010",
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["Id"], id.as_str());

    // Bad references and tags: clear errors.
    assert_fails(
        &run(&home, &["tag", "nope", "x:y"]),
        "no installed image is named 'nope'",
    );
    assert_fails(
        &run(&home, &["tag", "nanoserver", "Upper:case"]),
        "must be lower case",
    );
    assert_fails(
        &run(&home, &["history", "abc"]),
        "no installed image is named 'abc'",
    );

    // rmi: untag first; an Id with several tags needs -f; the last tag removes.
    let o = run(&home, &["rmi", "nanoserver:latest"]);
    assert_exit(&o, 0);
    assert_eq!(lines(&o), ["Untagged: nanoserver:latest"]);
    assert_fails(&run(&home, &["rmi", &id[..8]]), "must be forced");
    assert_exit(&run(&home, &["rmi", "127.0.0.1:5000/windows/nano:ltsc"]), 0);
    let o = run(&home, &["rmi", "nanoserver:10.0.14300.1010"]);
    assert_exit(&o, 0);
    assert_eq!(
        lines(&o),
        [
            "Untagged: nanoserver:10.0.14300.1010".to_string(),
            format!("Deleted: sha256:{id}")
        ]
    );
    assert!(get_images(&home).is_empty());
    assert_store_consistent(&home, &store_dir(&home));
}

#[test]
fn a_tag_names_one_image_and_moves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    install_os_image(&home, &make_wim(tmp.path(), "Base-1-0.wim", None, false));
    install_os_image(&home, &make_wim(tmp.path(), "Base-2-0.wim", None, false));
    assert_exit(&run(&home, &["tag", "base:1.0.0.0", "base:latest"]), 0);
    assert_exit(&run(&home, &["tag", "base:2.0.0.0", "base:latest"]), 0);
    let latest: Vec<_> = image_rows(&home)
        .into_iter()
        .filter(|(_, t, _)| t == "latest")
        .collect();
    assert_eq!(latest.len(), 1, "a tag names one image");
    let two = run(&home, &["Get-ContainerImage", "-Version", "2.0"]);
    let tags = json_lines(&two)[0]["RepoTags"].clone();
    assert_eq!(tags, serde_json::json!(["base:2.0.0.0", "base:latest"]));
}

#[test]
fn a_store_without_tags_gets_its_default_tags_and_a_damaged_tag_file_is_rebuilt() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    install_os_image(&home, &make_wim(tmp.path(), "Nano-1-0.wim", None, false));
    assert_exit(&run(&home, &["tag", "nano:1.0.0.0", "nano:latest"]), 0);
    let tags_file = store_dir(&home).join("tags.json");
    // A store written before tags existed has no tags.json.
    fs::remove_file(&tags_file).expect("rm tags.json");
    let rows = image_rows(&home);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("nano", "1.0.0.0")
    );
    // A changing command writes them once.
    assert_exit(&run(&home, &["tag", "nano:1.0.0.0", "nano:latest"]), 0);
    assert!(tags_file.is_file());
    fs::write(&tags_file, b"{\"Format\": 1, \"Tags\": {\"nano:latest\": ").expect("damage");
    let o = run(&home, &["tag", "nano:1.0.0.0", "x:y"]);
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("tag file"),
        "the damage is reported: {}",
        stderr(&o)
    );
    let mut tags: Vec<String> = image_rows(&home)
        .into_iter()
        .map(|(r, t, _)| format!("{r}:{t}"))
        .collect();
    tags.sort();
    assert_eq!(tags, ["nano:1.0.0.0", "x:y"]);
}
