//! Packaging: shell completions and man pages from the binary, the systemd unit (checked by
//! `systemd-analyze verify`) and the Containerfile (parsed here: no container engine runs in
//! tests).

mod common;

use std::process::Command;

use anyhow::{Context, Result};
use common::{BIN, cli};

const UNIT: &str = include_str!("../packaging/mcc.service");
const CONTAINERFILE: &str = include_str!("../packaging/Containerfile");

#[test]
fn completions_cover_the_subcommands() -> Result<()> {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, out, err) = cli(&["completions", shell])?;
        assert!(ok, "{shell}: {err}");
        for word in [
            "doctor",
            "blob",
            "completions",
            "--cpu-profile",
            "--data-folder",
        ] {
            let word = if shell == "fish" {
                word.trim_start_matches("--")
            } else {
                word
            };
            assert!(out.contains(word), "{shell} completions lack {word}");
        }
    }
    let (ok, _, err) = cli(&["completions", "tcsh"])?;
    assert!(!ok && err.contains("tcsh"), "{err}");
    Ok(())
}

#[test]
fn man_pages_print_and_write() -> Result<()> {
    let (ok, out, err) = cli(&["man"])?;
    assert!(ok, "{err}");
    assert!(
        out.starts_with(".ie") || out.contains(".TH mcc"),
        "{}",
        &out[..200.min(out.len())]
    );
    for word in ["doctor", "\\-\\-heap\\-profile", "MCC_PROFILE_DIR"] {
        assert!(out.contains(word), "man page lacks {word}");
    }
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("man1");
    let (ok, out, err) = cli(&["man", "--dir", target.to_str().context("path")?])?;
    assert!(ok, "{err}");
    for page in ["mcc.1", "mcc-doctor.1", "mcc-blob.1", "mcc-blob-add.1"] {
        let p = target.join(page);
        assert!(p.exists(), "no {page} in {out}");
        assert!(std::fs::read_to_string(&p)?.contains(".TH"), "{page}");
    }
    Ok(())
}

/// Whether the `systemd-analyze` tests must run (CI sets it).
fn required() -> bool {
    std::env::var("MCC_REQUIRE_SYSTEMD").is_ok_and(|v| v == "1")
}

/// `systemd-analyze verify` of `unit` (its ExecStart pointed at the built binary): exit status
/// and everything it printed.
fn verify(unit: &str) -> Result<Option<(bool, String)>> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            !required(),
            "MCC_REQUIRE_SYSTEMD=1 but systemd-analyze is missing"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("mcc.service");
    let unit = unit.replace("ExecStart=/usr/local/bin/mcc", &format!("ExecStart={BIN}"));
    std::fs::write(&path, unit)?;
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Some((out.status.success(), text)))
}

#[test]
fn systemd_unit_verifies_and_is_sandboxed() -> Result<()> {
    let Some((ok, text)) = verify(UNIT)? else {
        return Ok(());
    };
    // verify exits 0 on ignored lines too: any message about the unit is a failure.
    assert!(ok && !text.contains("mcc.service"), "{text}");
    // The check notices a broken unit (so a clean run above means something).
    let (_, bad) = verify(&UNIT.replace("AF_NETLINK", "AF_NOPE"))?.context("verify")?;
    assert!(bad.contains("AF_NOPE"), "{bad}");

    let settings: Vec<&str> = UNIT
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for line in [
        "DynamicUser=yes",
        "StateDirectory=mcc",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "Environment=MCC_DATA_FOLDER=/var/lib/mcc",
    ] {
        assert!(settings.contains(&line), "unit lacks {line}");
    }
    let families = settings
        .iter()
        .find_map(|l| l.strip_prefix("RestrictAddressFamilies="))
        .context("no RestrictAddressFamilies")?;
    for f in ["AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"] {
        assert!(families.split_whitespace().any(|x| x == f), "{f}");
    }
    Ok(())
}

/// The `MCC_*` variables a file sets must be ones the daemon reads.
fn assert_known_env(file: &str, what: &str) -> Result<()> {
    let (ok, help, err) = cli(&["--help"])?;
    assert!(ok, "{err}");
    let mut seen = 0;
    for word in file.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("MCC_") && word.len() > 4 {
            seen += 1;
            assert!(
                help.contains(&format!("{word}=")),
                "{what} sets {word}, unknown to mcc"
            );
        }
    }
    assert!(seen > 0);
    Ok(())
}

#[test]
fn unit_and_containerfile_set_only_real_variables() -> Result<()> {
    assert_known_env(UNIT, "mcc.service")?;
    assert_known_env(CONTAINERFILE, "Containerfile")
}

/// The Containerfile's instructions: (keyword, arguments), continuation lines joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (k, rest) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push((k.to_string(), rest.trim().to_string()));
        current.clear();
    }
    assert!(current.is_empty(), "dangling continuation line");
    out
}

#[test]
fn containerfile_parses_multi_stage_non_root_with_a_volume() -> Result<()> {
    const KEYWORDS: &[&str] = &[
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
    ];
    let ins = instructions(CONTAINERFILE);
    for (k, args) in &ins {
        assert!(KEYWORDS.contains(&k.as_str()), "unknown instruction {k}");
        assert!(!args.is_empty(), "{k} without arguments");
    }
    let args_of = |k: &str| -> Vec<&str> {
        ins.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    let froms = args_of("FROM");
    assert_eq!(froms.len(), 2, "builder and runtime stages");
    let stage = froms[0]
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[0].eq_ignore_ascii_case("as"))
        .map(|w| w[1].to_string())
        .context("the build stage has no name")?;
    assert!(froms[0].contains("rust"), "{}", froms[0]);
    assert!(
        froms[1].contains("debian") && froms[1].contains("slim"),
        "{}",
        froms[1]
    );
    assert!(
        args_of("COPY")
            .iter()
            .any(|c| c.contains(&format!("--from={stage}"))),
        "the runtime stage copies nothing from {stage}"
    );
    assert!(args_of("RUN")[0].contains("cargo build --release"));
    // The last USER is not root, and comes after the last RUN.
    let user_at = ins
        .iter()
        .rposition(|(k, _)| k == "USER")
        .context("no USER")?;
    let run_at = ins
        .iter()
        .rposition(|(k, _)| k == "RUN")
        .context("no RUN")?;
    assert!(user_at > run_at);
    let user = &ins[user_at].1;
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
    assert!(args_of("VOLUME").iter().any(|v| v.contains("/data")));
    let expose = args_of("EXPOSE").join(" ");
    for port in ["9376/tcp", "9376/udp", "8080/tcp"] {
        assert!(expose.contains(port), "EXPOSE lacks {port}");
    }
    let env = args_of("ENV").join(" ");
    assert!(env.contains("MCC_LISTEN=0.0.0.0:9376") && env.contains("MCC_HTTP=0.0.0.0:8080"));
    assert!(env.contains("MCC_DATA_FOLDER=/data"));
    // A non-loopback API needs a token (the daemon refuses to start without one).
    assert!(env.contains("MCC_API_TOKEN=auto"));
    let health = args_of("HEALTHCHECK").join(" ");
    assert!(health.contains("http://127.0.0.1:8080/healthz"), "{health}");
    let entry: Vec<String> = serde_json::from_str(args_of("ENTRYPOINT")[0])?;
    assert_eq!(entry, vec!["/usr/local/bin/mcc".to_string()]);
    Ok(())
}
