//! The certificate tooling through the real `mcc` binary: `mcc ca init|sign|revoke`,
//! `mcc --newcert` and `mcc cert show`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mcc");

/// Runs `mcc ARGS` with no MCC_* settings from the environment.
fn mcc(args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MCC_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG")
        .args(args)
        .output()
        .expect("running mcc")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a command that must succeed and print JSON.
fn ok_json(args: &[&str]) -> Value {
    let out = mcc(args);
    assert!(
        out.status.success(),
        "mcc {args:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("mcc {args:?}: not JSON ({e}): {}", text(&out.stdout)))
}

/// Runs a command that must fail with a one-line error containing `needle`.
fn fails(args: &[&str], needle: &str) -> String {
    let out = mcc(args);
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "mcc {args:?} succeeded: {}",
        text(&out.stdout)
    );
    assert!(
        err.contains(needle),
        "mcc {args:?}: {err:?} lacks {needle:?}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn path_of(v: &Value, key: &str) -> PathBuf {
    PathBuf::from(v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}")))
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn ca_init(dir: &Path) -> Value {
    ok_json(&["--json", "ca", "init", "--dir", s(dir)])
}

fn newcert(data: &Path, label: &str) -> Value {
    ok_json(&[
        "--json",
        "--newcert",
        "--data-folder",
        s(data),
        "--label",
        label,
    ])
}

#[test]
fn ca_init_writes_a_secret_key_and_refuses_a_second_time() {
    let d = tempfile::tempdir().unwrap();
    let ca = d.path().join("ca");
    let v = ca_init(&ca);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 2, "{v}");
    let cert = path_of(&v, "cert");
    let key = path_of(&v, "key");
    assert_eq!(cert, ca.join("ca.crt"));
    assert_eq!(key, ca.join("ca.key"));
    assert!(cert.is_file() && key.is_file());
    #[cfg(unix)]
    assert_eq!(mode(&key), 0o600);
    let before = std::fs::read(&key).unwrap();

    let shown = ok_json(&["--json", "cert", "show", s(&cert)]);
    assert_eq!(shown["kind"], "ca_certificate");
    assert_eq!(shown["label"], "mccca");
    assert_eq!(shown["status"], "valid");
    let days = shown["expires_in_days"].as_f64().unwrap();
    assert!((3649.9..=3650.0).contains(&days), "{days}");

    fails(&["ca", "init", "--dir", s(&ca)], "already exists");
    assert_eq!(std::fs::read(&key).unwrap(), before);

    // Human output: one `name: path` line per file.
    let out = mcc(&["ca", "init", "--dir", s(&d.path().join("ca2"))]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("cert: ") && stdout.contains("key: "),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
}

#[test]
fn newcert_sign_show_and_revoke() {
    let d = tempfile::tempdir().unwrap();
    let ca = d.path().join("ca");
    ca_init(&ca);
    let data = d.path().join("node");

    // --newcert: key, self-signed certificate and request in the data folder.
    let v = newcert(&data, "kitchen");
    let cert = path_of(&v, "cert");
    let key = path_of(&v, "key");
    let request = path_of(&v, "request");
    assert_eq!(cert, data.join("node.crt"));
    assert_eq!(key, data.join("node.key"));
    assert_eq!(request, data.join("node.csr"));
    assert!(cert.is_file() && key.is_file() && request.is_file());
    #[cfg(unix)]
    assert_eq!(mode(&key), 0o600);

    let shown = ok_json(&["--json", "cert", "show", s(&cert)]);
    assert_eq!(shown["kind"], "certificate");
    assert_eq!(shown["self_signed"], true);
    assert_eq!(shown["label"], "kitchen");
    assert_eq!(shown["permissions"], serde_json::json!(["all"]));
    let peer = shown["peer_id"].as_str().unwrap().to_string();
    let req = ok_json(&["--json", "cert", "show", s(&request)]);
    assert_eq!(req["kind"], "request");
    assert_eq!(req["peer_id"], peer.as_str());
    assert_eq!(req["signature_valid"], true);
    let k = ok_json(&["--json", "cert", "show", s(&key)]);
    assert_eq!(k["kind"], "private_key");
    assert_eq!(k["peer_id"], peer.as_str());
    let out = mcc(&["cert", "show", s(&cert)]);
    assert!(out.status.success());
    let human = text(&out.stdout);
    assert!(
        human.contains("kitchen") && human.contains(&peer),
        "{human}"
    );
    assert!(human.contains("expires in 365 days"), "{human}");

    // A second --newcert never replaces the key.
    fails(&["--newcert", "--data-folder", s(&data)], "already exists");

    // The CA signs it: chosen permissions, 30 days, replacing the self-signed certificate.
    let v = ok_json(&[
        "--json",
        "ca",
        "sign",
        s(&request),
        "--ca-dir",
        s(&ca),
        "--permissions",
        "rpc:call",
        "--days",
        "30",
    ]);
    assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
    assert_eq!(path_of(&v, "cert"), cert);
    let shown = ok_json(&["--json", "cert", "show", s(&cert)]);
    assert_eq!(shown["kind"], "certificate");
    assert_eq!(shown["self_signed"], false);
    assert_eq!(shown["label"], "kitchen");
    assert_eq!(shown["peer_id"], peer.as_str());
    assert_eq!(shown["permissions"], serde_json::json!(["rpc:call"]));
    assert_eq!(shown["status"], "valid");
    let days = shown["expires_in_days"].as_f64().unwrap();
    assert!((29.9..=30.0).contains(&days), "{days}");
    let ca_shown = ok_json(&["--json", "cert", "show", s(&ca.join("ca.crt"))]);
    assert_eq!(shown["issuer"], ca_shown["peer_id"]);
    let serial = shown["serial"].as_str().unwrap().to_string();

    // -o elsewhere; the default permissions are the requested ones.
    let other = d.path().join("copy.crt");
    let v = ok_json(&[
        "--json",
        "ca",
        "sign",
        s(&request),
        "--ca-dir",
        s(&ca),
        "-o",
        s(&other),
        "--days",
        "0.5",
    ]);
    assert_eq!(path_of(&v, "cert"), other);
    let copy = ok_json(&["--json", "cert", "show", s(&other)]);
    assert_eq!(copy["permissions"], serde_json::json!(["all"]));
    assert!(copy["expires_in_days"].as_f64().unwrap() <= 0.5);

    // Refused: a tampered request, an unknown permission, zero days.
    let b64 = std::fs::read_to_string(&request).unwrap();
    let mut chars: Vec<char> = b64.trim_end().chars().collect();
    let i = chars.len() - 10; // inside the signature
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered = d.path().join("tampered.csr");
    std::fs::write(&tampered, format!("{}\n", chars.iter().collect::<String>())).unwrap();
    let ca_dir = s(&ca);
    let err = fails(
        &["ca", "sign", s(&tampered), "--ca-dir", ca_dir],
        "tampered.csr",
    );
    assert!(err.contains("signature is invalid"), "{err}");
    assert!(!d.path().join("tampered.crt").exists());
    fails(
        &[
            "ca",
            "sign",
            s(&request),
            "--ca-dir",
            ca_dir,
            "--permissions",
            "rpc:fly",
        ],
        "unknown permission",
    );
    fails(
        &["ca", "sign", s(&request), "--ca-dir", ca_dir, "--days", "0"],
        "--days",
    );
    fails(
        &[
            "ca",
            "init",
            "--dir",
            s(&d.path().join("x")),
            "--days",
            "-1",
        ],
        "--days",
    );
    // The refused commands left the signed certificate alone.
    let again = ok_json(&["--json", "cert", "show", s(&cert)]);
    assert_eq!(again["serial"], serial.as_str());

    // Revoking the certificate file twice: sequence 1, then 2; the list names its serial.
    let v = ok_json(&["--json", "ca", "revoke", s(&cert), "--ca-dir", ca_dir]);
    let crl = path_of(&v, "revocations");
    assert_eq!(crl, ca.join("revocations.crl"));
    assert_eq!(v["sequence"], 1);
    assert_eq!(v["published"], false);
    let v = ok_json(&["--json", "ca", "revoke", s(&cert), "--ca-dir", ca_dir]);
    assert_eq!(v["sequence"], 2);
    let list = ok_json(&["--json", "cert", "show", s(&crl)]);
    assert_eq!(list["kind"], "revocation_list");
    assert_eq!(list["sequence"], 2);
    assert_eq!(list["serials"], serde_json::json!([serial]));
    assert_eq!(list["issuer"], ca_shown["peer_id"]);
    let out = mcc(&["cert", "show", s(&crl)]);
    assert!(text(&out.stdout).contains(&serial));

    // By peer id, with --publish and no node running: written, reported, non-zero exit.
    let out = mcc(&[
        "--json",
        "--api",
        "http://127.0.0.1:1",
        "ca",
        "revoke",
        &peer,
        "--ca-dir",
        ca_dir,
        "--publish",
    ]);
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sequence"], 3);
    assert_eq!(v["published"], false);
    assert!(
        text(&out.stderr).contains("not published"),
        "{}",
        text(&out.stderr)
    );
    let list = ok_json(&["--json", "cert", "show", s(&crl)]);
    assert_eq!(list["peers"], serde_json::json!([peer]));

    fails(
        &["ca", "revoke", "nonsense", "--ca-dir", ca_dir],
        "nonsense",
    );
    fails(
        &["cert", "show", s(&d.path().join("missing.crt"))],
        "missing.crt",
    );
}

#[test]
fn newcert_label_and_explicit_paths() {
    let d = tempfile::tempdir().unwrap();
    let v = newcert(&d.path().join("node"), "Kitchen Pi!");
    let shown = ok_json(&["--json", "cert", "show", v["cert"].as_str().unwrap()]);
    assert_eq!(shown["label"], "kitchenpi");
    let req = ok_json(&["--json", "cert", "show", v["request"].as_str().unwrap()]);
    assert_eq!(req["label"], "kitchenpi");

    // --cert and --privkey choose the paths; the request goes next to the certificate.
    let cert = d.path().join("certs").join("pi.crt");
    let key = d.path().join("keys").join("pi.key");
    let v = ok_json(&[
        "--json",
        "--newcert",
        "--data-folder",
        s(&d.path().join("unused")),
        "--cert",
        s(&cert),
        "--privkey",
        s(&key),
    ]);
    assert_eq!(path_of(&v, "cert"), cert);
    assert_eq!(path_of(&v, "key"), key);
    assert_eq!(
        path_of(&v, "request"),
        d.path().join("certs").join("pi.csr")
    );
    assert!(cert.is_file() && key.is_file() && d.path().join("certs/pi.csr").is_file());
    assert!(!d.path().join("unused").join("node.key").exists());
    let shown = ok_json(&["--json", "cert", "show", s(&cert)]);
    assert!(
        shown["label"].as_str().unwrap().starts_with("node"),
        "{shown}"
    );
}
