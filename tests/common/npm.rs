//! Pinned npm packages for interop tests (Helia in `tests/helia`, the UnixFS importer in
//! `behaviours/blobs/tests/reference`): checks Node's version and installs the packages
//! once into the folder's `node_modules`, or says why it cannot.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Node at least `min_major`, and the packages of `dir` installed (`npm <install_args>`
/// with scripts off, run when one of `markers`, paths under `node_modules`, is missing);
/// `note` tells what is being installed.
pub fn ensure_packages(
    dir: &Path,
    min_major: u32,
    markers: &[&str],
    install: &str,
    note: impl Fn(&str),
) -> Result<(), String> {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run `node`: {e}"))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("unexpected `node --version` output {version:?}"))?;
    if major < min_major {
        return Err(format!(
            "node {version} is too old (need {min_major} or later)"
        ));
    }
    if markers
        .iter()
        .any(|m| !dir.join("node_modules").join(m).exists())
    {
        note(&format!("installing the npm packages in {}", dir.display()));
        let out = Command::new("npm")
            .args([install, "--ignore-scripts", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .output()
            .map_err(|e| format!("cannot run `npm`: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`npm {install}` in {} failed ({}): {}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}
