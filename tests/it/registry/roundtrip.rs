//! Push and pull against a registry without authentication, read back by
//! skopeo and umoci; an image skopeo pushed is pulled; an index is chosen
//! from by os.version; pulls and pushes skip what is there already.

use std::fs;

use super::{files_of, files_of_image, images, installed_image, tool, Registry};
use crate::common::{assert_exit, assert_fails, json_lines, run, stderr, stdout};

#[test]
fn a_pushed_image_is_read_by_skopeo_and_umoci_and_pulls_back_identical() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let original = files_of_image(&home);
    let registry = Registry::start("");
    let dest = format!("{}/windows/nano:1", registry.addr);

    let o = run(
        &home,
        &[
            "Submit-ContainerImage",
            "nano:1.0.0.0",
            &dest,
            "-OutputFormat",
            "Json",
        ],
    );
    assert_exit(&o, 0);
    let pushed = json_lines(&o);
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!(pushed[0]["Destination"], dest.as_str());
    let digest = pushed[0]["Digest"].as_str().expect("Digest").to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert!(pushed[0]["Size"].as_u64().expect("Size") > 1000);

    // skopeo reads what we pushed, and umoci unpacks its copy.
    let inspect = tool(
        "skopeo",
        &[
            "inspect",
            "--override-os",
            "windows",
            "--tls-verify=false",
            &format!("docker://{dest}"),
        ],
    );
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("skopeo json");
    assert_eq!(info["Digest"], digest.as_str(), "{info}");
    assert_eq!(info["Os"], "windows", "{info}");
    let layout = tmp.path().join("skopeo-layout");
    tool(
        "skopeo",
        &[
            "copy",
            "--override-os",
            "windows",
            "--src-tls-verify=false",
            &format!("docker://{dest}"),
            &format!("oci:{}:copy", layout.display()),
        ],
    );
    let rootfs = tmp.path().join("umoci-rootfs");
    tool(
        "umoci",
        &[
            "raw",
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:copy", layout.display()),
            rootfs.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(
        files_of(&rootfs.join("Files")),
        original,
        "umoci's unpacked tree differs from the installed one"
    );

    // Pulled into another home: the same files, listed under the reference.
    let home2 = tmp.path().join("home2");
    let o = run(&home2, &["pull", &dest]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert_eq!(out.lines().last(), Some(dest.as_str()), "{out}");
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    let err = stderr(&o);
    assert!(err.contains("Downloaded in 0 hours, 0 minutes, "), "{err}");
    assert_eq!(files_of_image(&home2), original);
    let o = run(&home2, &["images"]);
    assert_exit(&o, 0);
    let listing = stdout(&o);
    assert!(
        listing.lines().any(
            |l| l.starts_with(&format!("{}/windows/nano ", registry.addr)) && l.contains(" 1 ")
        ),
        "images should list the pulled reference:\n{listing}"
    );
    let image = &images(&home2)[0];
    assert_eq!(
        image["Publisher"],
        format!("CN={}", registry.addr.replace(':', "-")).as_str(),
        "{image}"
    );

    // Again: nothing is downloaded.
    let o = run(&home2, &["pull", &dest, "-Verbose"]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("Status: Image is up to date"),
        "{}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert!(err.contains("no layer is downloaded"), "{err}");
    assert_eq!(
        err.matches("/blobs/sha256:").count(),
        1,
        "only the config is fetched again:\n{err}"
    );

    // docker's push of the pulled reference: the same digest, nothing uploaded.
    let o = run(&home2, &["push", &dest]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).starts_with(&format!("1: digest: {digest} size: ")),
        "{}",
        stdout(&o)
    );

    // Pushing again skips every blob; to another repository, the layer is mounted.
    let o = run(
        &home,
        &["Submit-ContainerImage", "nano:1.0.0.0", &dest, "-Verbose"],
    );
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("0 blobs uploaded, 0 mounted, 2 already there"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &home2,
        &[
            "Submit-ContainerImage",
            &dest,
            &format!("{}/other/nano:2", registry.addr),
            "-Verbose",
        ],
    );
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("mounted from windows/nano"), "{err}");
    assert!(err.contains("1 blobs uploaded, 1 mounted"), "{err}");
    tool(
        "skopeo",
        &[
            "inspect",
            "--override-os",
            "windows",
            "--tls-verify=false",
            &format!("docker://{}/other/nano:2", registry.addr),
        ],
    );
}

#[test]
fn an_image_skopeo_pushed_is_pulled_and_an_index_entry_is_chosen_by_os_version() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let original = files_of_image(&home);
    let registry = Registry::start("");
    // Two manifests of the image (gzip and zstd layers), pushed by skopeo.
    let mut digests = Vec::new();
    for (name, compression) in [("gz", "Gzip"), ("zst", "Zstd")] {
        let layout = tmp.path().join(name);
        assert_exit(
            &run(
                &home,
                &[
                    "Export-ContainerImage",
                    "nano:1.0.0.0",
                    "-Path",
                    layout.to_str().expect("utf-8"),
                    "-Format",
                    "OciDirectory",
                    "-Compression",
                    compression,
                ],
            ),
            0,
        );
        let target = format!("docker://{}/win/nano:{name}", registry.addr);
        tool(
            "skopeo",
            &[
                "copy",
                "--dest-tls-verify=false",
                &format!("oci:{}:1.0.0.0", layout.display()),
                &target,
            ],
        );
        let inspect = tool(
            "skopeo",
            &["inspect", "--raw", "--tls-verify=false", &target],
        );
        digests.push((
            format!(
                "sha256:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&inspect.stdout))
            ),
            inspect.stdout.len(),
        ));
    }
    // A hand-written index: the gzip manifest as 17763, the zstd one as 20348.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digests[0].0, "size": digests[0].1,
             "platform": {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.6054"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digests[1].0, "size": digests[1].1,
             "platform": {"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.2655"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digests[0].0, "size": digests[0].1,
             "platform": {"os": "linux", "architecture": "amd64"}}
        ]
    });
    let index_file = tmp.path().join("index.json");
    fs::write(&index_file, index.to_string()).expect("write");
    tool(
        "curl",
        &[
            "-sSf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.index.v1+json",
            "--data-binary",
            &format!("@{}", index_file.display()),
            &format!("http://{}/v2/win/nano/manifests/multi", registry.addr),
        ],
    );

    let home2 = tmp.path().join("home2");
    let multi = format!("{}/win/nano:multi", registry.addr);
    let o = run(
        &home2,
        &[
            "Request-ContainerImage",
            &multi,
            "-Verbose",
            "-OutputFormat",
            "Json",
        ],
    );
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains(&format!(
            "chose {} (os.version 10.0.20348.2655)",
            digests[1].0
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(files_of_image(&home2), original);
    assert_eq!(json_lines(&o).len(), 1);

    let home3 = tmp.path().join("home3");
    let o = run(
        &home3,
        &[
            "Request-ContainerImage",
            &format!("{}/win/nano", registry.addr),
            "multi",
            "-OsVersion",
            "10.0.17763",
            "-Verbose",
        ],
    );
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains(&format!("chose {}", digests[0].0)),
        "{}",
        stderr(&o)
    );

    let o = run(
        &home3,
        &[
            "Request-ContainerImage",
            &multi,
            "-OsVersion",
            "10.0.14393",
            "-Force",
        ],
    );
    assert_fails(&o, "no entry for windows/amd64 with os.version 10.0.14393");

    // By digest: no tag is added.
    let home4 = tmp.path().join("home4");
    let by_digest = format!("{}/win/nano@{}", registry.addr, digests[0].0);
    assert_exit(&run(&home4, &["pull", &by_digest]), 0);
    assert_eq!(files_of_image(&home4), original);
}

#[test]
fn references_without_a_registry_and_unknown_images_fail_clearly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let o = run(&home, &["pull", "nanoserver"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("no default registry"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("docker.io/library/nanoserver"),
        "{}",
        stderr(&o)
    );

    let registry = Registry::start("");
    let o = run(
        &home,
        &[
            "Request-ContainerImage",
            &format!("{}/no/such:1", registry.addr),
        ],
    );
    assert_fails(&o, "404");
    assert!(stderr(&o).contains("MANIFEST_UNKNOWN"), "{}", stderr(&o));

    // Plain HTTP only for loopback or with -Insecure: a remote name is https.
    let o = run(&home, &["pull", "registry.invalid/a:1"]);
    assert_fails(&o, "https://registry.invalid/v2/a/manifests/1");
}

#[test]
fn search_follows_the_pages_of_the_catalog_and_of_the_tags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let registry = Registry::start("");
    for target in [
        "apps/nanoserver:1",
        "apps/nanoserver:2",
        "apps/nanoserver:3",
        "base/servercore:1",
        "tools/nano-extra:1",
    ] {
        assert_exit(
            &run(
                &home,
                &[
                    "Submit-ContainerImage",
                    "nano:1.0.0.0",
                    &format!("{}/{target}", registry.addr),
                ],
            ),
            0,
        );
    }
    let search = |args: &[&str]| {
        crate::common::cmd(&home)
            .env("CONTAINERIMAGE_REGISTRY_PAGE", "1")
            .args(args)
            .output()
            .expect("runs")
    };
    let o = search(&[
        "Find-ContainerRegistryImage",
        &registry.addr,
        "nano",
        "-OutputFormat",
        "Json",
        "-Verbose",
    ]);
    assert_exit(&o, 0);
    let found = json_lines(&o);
    let names: Vec<&str> = found
        .iter()
        .filter_map(|f| f["Repository"].as_str())
        .collect();
    assert_eq!(names, ["apps/nanoserver", "tools/nano-extra"], "{found:?}");
    assert_eq!(found[0]["Tags"], serde_json::json!(["1", "2", "3"]));
    assert_eq!(found[0]["Registry"], registry.addr.as_str());
    assert!(
        stderr(&o).matches("_catalog").count() >= 3,
        "one request per page:\n{}",
        stderr(&o)
    );

    let o = search(&[
        "Find-ContainerRegistryImage",
        &registry.addr,
        "*/servercore",
        "-OutputFormat",
        "Json",
    ]);
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o).len(), 1);
    let o = search(&["Find-ContainerRegistryImage", &registry.addr, "absent"]);
    assert_fails(&o, "No repository of");
}

#[test]
fn a_child_image_pushes_as_two_layers_and_pulls_back_as_a_child_of_its_base() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let o = run(&home, &["New-Container", "nano:1.0.0.0", "demo"]);
    assert_exit(&o, 0);
    let files = home.join("containers/demo/Files");
    fs::write(files.join("app.txt"), b"app").expect("write");
    fs::remove_file(files.join("Windows/empty.txt")).expect("rm");
    assert_exit(&run(&home, &["commit", "demo", "demo-app:v1"]), 0);

    let registry = Registry::start("");
    let dest = format!("{}/apps/demo:v1", registry.addr);
    // As with docker: tag with the registry's name, then push.
    assert_exit(&run(&home, &["tag", "demo-app:v1", &dest]), 0);
    let o = run(&home, &["push", &dest]);
    assert_exit(&o, 0);
    // skopeo sees two layers; umoci applies the child's changes.
    let layout = tmp.path().join("skopeo-layout");
    tool(
        "skopeo",
        &[
            "copy",
            "--override-os",
            "windows",
            "--src-tls-verify=false",
            &format!("docker://{dest}"),
            &format!("oci:{}:copy", layout.display()),
        ],
    );
    let rootfs = tmp.path().join("rootfs");
    tool(
        "umoci",
        &[
            "raw",
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:copy", layout.display()),
            rootfs.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(files_of(&rootfs.join("Files")), files_of(&files));
    assert!(!rootfs.join("Files/Windows/empty.txt").exists());

    // Pulled into a fresh home: two store images, the top one a child.
    let other = tmp.path().join("other");
    let o = run(&other, &["pull", &dest]);
    assert_exit(&o, 0);
    let pulled = images(&other);
    assert_eq!(pulled.len(), 2, "{pulled:?}");
    let base = pulled
        .iter()
        .find(|i| i["IsOSImage"] == true)
        .expect("a base image");
    let top = pulled
        .iter()
        .find(|i| i["IsOSImage"] == false)
        .expect("a child image");
    assert_eq!(top["ParentImage"], base["FullName"]);
    assert!(
        top["RepoTags"].to_string().contains("apps/demo:v1"),
        "{top}"
    );
    // A host that has the base already downloads only the child's layer.
    let base_dest = format!("{}/apps/base:1", registry.addr);
    assert_exit(&run(&home, &["tag", "nano:1.0.0.0", &base_dest]), 0);
    assert_exit(&run(&home, &["push", &base_dest]), 0);
    let third = tmp.path().join("third");
    assert_exit(&run(&third, &["pull", &base_dest]), 0);
    let o = run(&third, &["Request-ContainerImage", &dest, "-Verbose"]);
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("1 of 2 layers are in the store already"),
        "{}",
        stderr(&o)
    );
    assert_eq!(images(&third).len(), 2);

    let o = run(&other, &["New-Container", &dest, "again"]);
    assert_exit(&o, 0);
    assert_eq!(
        files_of(&other.join("containers/again/Files")),
        files_of(&files)
    );
}
