//! Authentication against a registry with htpasswd Basic auth and with
//! token auth (a token server in the test process signing ES256 tokens with
//! a certificate the registry trusts), credentials as Docker keeps them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::{assert_never_shows, files_of_image, installed_image, tool, Registry};
use crate::common::{assert_exit, assert_fails, cmd, stderr, stdout};

const USER: &str = "pusher";
const PASSWORD: &str = "Sesame-7f3c9b2e";

/// Runs the binary with `DOCKER_CONFIG` set and `stdin` on standard input.
fn run_with(home: &Path, docker: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = cmd(home);
    c.env("DOCKER_CONFIG", docker).args(args);
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("the binary runs");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("the binary ends")
}

fn basic_of(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

fn config_of(docker: &Path) -> serde_json::Value {
    let path = docker.join("config.json");
    serde_json::from_slice(&fs::read(path).expect("config.json")).expect("json")
}

#[test]
fn basic_auth_login_push_pull_logout_and_the_password_never_shows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let original = files_of_image(&home);
    let htpasswd = tool("htpasswd", &["-Bbn", USER, PASSWORD]);
    let htpasswd_file = tmp.path().join("htpasswd");
    fs::write(&htpasswd_file, &htpasswd.stdout).expect("write");
    let registry = Registry::start(&format!(
        "  htpasswd:\n    realm: test-realm\n    path: {}\n",
        htpasswd_file.display()
    ));
    let docker = tmp.path().join("docker");
    fs::create_dir_all(&docker).expect("mkdir");
    // Keys this tool does not manage are kept.
    fs::write(
        docker.join("config.json"),
        r#"{"auths":{"other.example":{"auth":"b3RoZXI6b3RoZXI="}},"psFormat":"table {{.ID}}"}"#,
    )
    .expect("write");
    let dest = format!("{}/team/nano:1", registry.addr);

    let o = run_with(
        &home,
        &docker,
        &["Submit-ContainerImage", "nano:1.0.0.0", &dest],
        None,
    );
    assert_fails(&o, "log in first with Connect-ContainerRegistry");

    let o = run_with(
        &home,
        &docker,
        &[
            "Connect-ContainerRegistry",
            &registry.addr,
            "-UserName",
            USER,
            "-PasswordStdin",
            "-Verbose",
        ],
        Some("wrong-password\n"),
    );
    assert_fails(&o, "refused the credentials");
    assert_never_shows(&o, "wrong-password");
    assert!(config_of(&docker)["auths"].get(&registry.addr).is_none());

    let o = run_with(
        &home,
        &docker,
        &[
            "login",
            "-u",
            USER,
            "--password-stdin",
            &registry.addr,
            "-Verbose",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert_exit(&o, 0);
    assert_eq!(stdout(&o).trim(), "Login Succeeded");
    assert_never_shows(&o, PASSWORD);
    assert_never_shows(&o, &basic_of(USER, PASSWORD));
    let mode = fs::metadata(docker.join("config.json"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "config.json must be 0600");
    let config = config_of(&docker);
    assert_eq!(
        config["auths"][&registry.addr]["auth"],
        basic_of(USER, PASSWORD).as_str()
    );
    assert_eq!(config["auths"]["other.example"]["auth"], "b3RoZXI6b3RoZXI=");
    assert_eq!(config["psFormat"], "table {{.ID}}");

    let o = run_with(
        &home,
        &docker,
        &["Submit-ContainerImage", "nano:1.0.0.0", &dest, "-Verbose"],
        None,
    );
    assert_exit(&o, 0);
    assert_never_shows(&o, PASSWORD);
    assert_never_shows(&o, &basic_of(USER, PASSWORD));
    // skopeo reads it with the same credentials.
    tool(
        "skopeo",
        &[
            "inspect",
            "--override-os",
            "windows",
            "--tls-verify=false",
            "--creds",
            &format!("{USER}:{PASSWORD}"),
            &format!("docker://{dest}"),
        ],
    );

    let home2 = tmp.path().join("home2");
    let o = run_with(
        &home2,
        &docker,
        &["Request-ContainerImage", &dest, "-Verbose"],
        None,
    );
    assert_exit(&o, 0);
    assert_never_shows(&o, PASSWORD);
    assert_never_shows(&o, &basic_of(USER, PASSWORD));
    assert_eq!(files_of_image(&home2), original);

    let o = run_with(
        &home2,
        &docker,
        &["search", &format!("{}/nano", registry.addr)],
        None,
    );
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("{}/team/nano\t1", registry.addr)),
        "{}",
        stdout(&o)
    );

    let o = run_with(&home2, &docker, &["logout", &registry.addr], None);
    assert_exit(&o, 0);
    assert!(config_of(&docker)["auths"].get(&registry.addr).is_none());
    assert_eq!(config_of(&docker)["psFormat"], "table {{.ID}}");
    let o = run_with(&home2, &docker, &["pull", &dest, "--force"], None);
    assert!(
        o.status.code() != Some(0),
        "a pull without credentials must fail"
    );
}

/// A credential helper script: `get` answers from a file, `store` and
/// `erase` write it.
fn credential_helper(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).expect("mkdir");
    let store = dir.join("helper-store.json");
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n get) read host; if [ -f '{s}' ]; then cat '{s}'; else echo 'credentials not found in native keychain'; exit 1; fi;;\n store) cat > '{s}';;\n erase) rm -f '{s}';;\nesac\n",
        s = store.display()
    );
    let path = bin.join("docker-credential-testhelper");
    fs::write(&path, script).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

#[test]
fn a_credential_helper_stores_and_gives_the_credentials() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let htpasswd = tool("htpasswd", &["-Bbn", USER, PASSWORD]);
    let htpasswd_file = tmp.path().join("htpasswd");
    fs::write(&htpasswd_file, &htpasswd.stdout).expect("write");
    let registry = Registry::start(&format!(
        "  htpasswd:\n    realm: test-realm\n    path: {}\n",
        htpasswd_file.display()
    ));
    let docker = tmp.path().join("docker");
    fs::create_dir_all(&docker).expect("mkdir");
    fs::write(
        docker.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"testhelper"}}}}"#, registry.addr),
    )
    .expect("write");
    let bin = credential_helper(tmp.path());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let with_path = |args: &[&str], stdin: Option<&str>| {
        let mut c = cmd(&home);
        c.env("DOCKER_CONFIG", &docker)
            .env("PATH", &path)
            .args(args);
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("runs");
        if let Some(t) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(t.as_bytes())
                .expect("write");
        }
        child.wait_with_output().expect("ends")
    };
    let o = with_path(
        &[
            "Connect-ContainerRegistry",
            &registry.addr,
            "-UserName",
            USER,
            "-PasswordStdin",
        ],
        Some(PASSWORD),
    );
    assert_exit(&o, 0);
    let stored: serde_json::Value = serde_json::from_slice(
        &fs::read(tmp.path().join("helper-store.json")).expect("helper stored"),
    )
    .expect("json");
    assert_eq!(stored["Username"], USER);
    assert_eq!(stored["Secret"], PASSWORD);
    assert!(
        config_of(&docker).get("auths").is_none(),
        "the file holds no password"
    );
    let o = with_path(
        &[
            "Submit-ContainerImage",
            "nano:1.0.0.0",
            &format!("{}/h/nano:1", registry.addr),
        ],
        None,
    );
    assert_exit(&o, 0);
    let o = with_path(&["Disconnect-ContainerRegistry", &registry.addr], None);
    assert_exit(&o, 0);
    assert!(!tmp.path().join("helper-store.json").exists());
}

/// The token server: checks Basic credentials or a refresh token, grants
/// what was asked (pull only to anonymous callers), records each request's
/// scopes.
struct TokenServer {
    state: Arc<TokenState>,
    _runtime: tokio::runtime::Runtime,
}

struct TokenState {
    key_pem: String,
    cert_der: Vec<u8>,
    service: String,
    issuer: String,
    lifetime: Mutex<u64>,
    /// The next this many tokens are issued expired.
    expired: Mutex<u32>,
    /// Scopes asked for, one entry per token request.
    requests: Mutex<Vec<Vec<String>>>,
}

fn token_for(state: &TokenState, scopes: &[String], full_access: bool) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let kind = parts.next()?;
            let name = parts.next()?;
            let actions: Vec<&str> = parts
                .next()?
                .split(',')
                .filter(|a| full_access || *a == "pull")
                .collect();
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
        })
        .collect();
    let lifetime = *state.lifetime.lock().expect("lock");
    let expired = {
        let mut left = state.expired.lock().expect("lock");
        let e = *left > 0;
        *left = left.saturating_sub(1);
        e
    };
    let exp = if expired { now - 60 } else { now + lifetime };
    let claims = serde_json::json!({
        "iss": state.issuer, "sub": "pusher", "aud": state.service,
        "exp": exp, "nbf": now - 120, "iat": now, "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec![
        base64::engine::general_purpose::STANDARD.encode(&state.cert_der)
    ]);
    let key = jsonwebtoken::EncodingKey::from_ec_pem(state.key_pem.as_bytes()).expect("key");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

async fn token_get(
    State(state): State<Arc<TokenState>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let scopes: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    state.requests.lock().expect("lock").push(scopes.clone());
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let full = match auth.strip_prefix("Basic ") {
        Some(b) if b == basic_of(USER, PASSWORD) => true,
        Some(_) => return (StatusCode::UNAUTHORIZED, "bad credentials").into_response(),
        None => false,
    };
    let token = token_for(&state, &scopes, full);
    let body = serde_json::json!({"token": token, "expires_in": 60, "refresh_token": if full { "refresh-abc" } else { "" }});
    axum::Json(body).into_response()
}

async fn token_post(
    State(state): State<Arc<TokenState>>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let scopes: Vec<String> = get("scope")
        .map(|s| s.split(' ').map(str::to_string).collect())
        .unwrap_or_default();
    state.requests.lock().expect("lock").push(scopes.clone());
    if get("grant_type").as_deref() != Some("refresh_token")
        || get("refresh_token").as_deref() != Some("refresh-abc")
    {
        return (StatusCode::UNAUTHORIZED, "bad refresh token").into_response();
    }
    let token = token_for(&state, &scopes, true);
    axum::Json(serde_json::json!({"access_token": token, "expires_in": 60})).into_response()
}

impl TokenServer {
    fn start(dir: &Path) -> (TokenServer, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["token-signer".to_string()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "token-signer");
        let cert = params.self_signed(&key).expect("cert");
        let cert_path = dir.join("token-cert.pem");
        fs::write(&cert_path, cert.pem()).expect("write cert");
        let state = Arc::new(TokenState {
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            service: "test-registry".into(),
            issuer: "test-issuer".into(),
            lifetime: Mutex::new(300),
            expired: Mutex::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .route("/token", axum::routing::get(token_get).post(token_post))
            .with_state(state.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let auth = format!(
            "  token:\n    realm: http://{addr}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
            cert_path.display()
        );
        (
            TokenServer {
                state,
                _runtime: runtime,
            },
            auth,
        )
    }

    fn requests(&self) -> Vec<Vec<String>> {
        self.state.requests.lock().expect("lock").clone()
    }
}

#[test]
fn token_auth_scopes_a_mount_in_one_token_and_refreshes_with_an_identity_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = installed_image(tmp.path());
    let original = files_of_image(&home);
    let (tokens, auth) = TokenServer::start(tmp.path());
    let registry = Registry::start(&auth);
    let docker = tmp.path().join("docker");
    fs::create_dir_all(&docker).expect("mkdir");

    // Anonymous: the token gives pull only, so a push is refused.
    let dest = format!("{}/base/nano:1", registry.addr);
    let o = run_with(
        &home,
        &docker,
        &["Submit-ContainerImage", "nano:1.0.0.0", &dest],
        None,
    );
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("Connect-ContainerRegistry"),
        "{}",
        stderr(&o)
    );

    let o = run_with(
        &home,
        &docker,
        &[
            "Connect-ContainerRegistry",
            &registry.addr,
            "-UserName",
            USER,
            "-PasswordStdin",
        ],
        Some("nope"),
    );
    assert_fails(&o, "the token service answered 401");
    let o = run_with(
        &home,
        &docker,
        &[
            "Connect-ContainerRegistry",
            &registry.addr,
            "-UserName",
            USER,
            "-PasswordStdin",
        ],
        Some(PASSWORD),
    );
    assert_exit(&o, 0);
    let o = run_with(
        &home,
        &docker,
        &["Submit-ContainerImage", "nano:1.0.0.0", &dest, "-Verbose"],
        None,
    );
    assert_exit(&o, 0);
    assert_never_shows(&o, PASSWORD);
    assert!(
        tokens
            .requests()
            .iter()
            .any(|r| r == &vec![format!("repository:base/nano:pull,push")]),
        "{:?}",
        tokens.requests()
    );

    // A pull, then a push to another repository: the layer is mounted with
    // one token holding both scopes.
    let home2 = tmp.path().join("home2");
    assert_exit(&run_with(&home2, &docker, &["pull", &dest], None), 0);
    assert_eq!(files_of_image(&home2), original);
    let o = run_with(
        &home2,
        &docker,
        &[
            "Submit-ContainerImage",
            &dest,
            &format!("{}/app/nano:1", registry.addr),
            "-Verbose",
        ],
        None,
    );
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("mounted from base/nano"),
        "{}",
        stderr(&o)
    );
    let both = vec![
        "repository:app/nano:pull,push".to_string(),
        "repository:base/nano:pull".to_string(),
    ];
    assert!(tokens.requests().contains(&both), "{:?}", tokens.requests());

    // An identity token (refresh token) in the file instead of a password.
    fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"refresh-abc"}}}}}}"#,
            registry.addr
        ),
    )
    .expect("write");
    let home3 = tmp.path().join("home3");
    let o = run_with(
        &home3,
        &docker,
        &[
            "Request-ContainerImage",
            &format!("{}/app/nano:1", registry.addr),
            "-Verbose",
        ],
        None,
    );
    assert_exit(&o, 0);
    assert_never_shows(&o, "refresh-abc");
    assert_eq!(files_of_image(&home3), original);

    // A token that has expired when it is used: the 401 gets a new one.
    *tokens.state.expired.lock().expect("lock") = 1;
    let before = tokens.requests().len();
    let home4 = tmp.path().join("home4");
    let o = run_with(
        &home4,
        &docker,
        &["Request-ContainerImage", &dest, "-Verbose"],
        None,
    );
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("refused the token; asking for a new one"),
        "{}",
        stderr(&o)
    );
    assert!(
        tokens.requests().len() >= before + 2,
        "{:?}",
        tokens.requests()
    );
    assert_eq!(files_of_image(&home4), original);
}
