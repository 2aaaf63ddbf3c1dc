//! Profiling flags and endpoints on the real binary: `--cpu-profile`, `--heap-profile`,
//! `--goroutine-profile` write files a pprof reader parses (decoded here against pprof's
//! `Profile` message), and `GET /debug/pprof/...` serves them behind the API's token.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::Daemon;
use pprof::protos::{Message, Profile};

/// Decodes a gzipped pprof protobuf.
fn decode(gz: &[u8]) -> Result<Profile> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .context("not gzip")?;
    Profile::decode(raw.as_slice()).context("not a pprof Profile")
}

fn strings(p: &Profile, ids: impl Iterator<Item = i64>) -> Vec<&str> {
    ids.filter_map(|i| p.string_table.get(i as usize).map(String::as_str))
        .collect()
}

/// Name of the leaf function of a sample (its innermost inlined frame).
fn leaf<'a>(p: &'a Profile, s: &pprof::protos::Sample) -> &'a str {
    let name = s.location_id.first().and_then(|l| {
        let loc = p.location.iter().find(|x| x.id == *l)?;
        let id = loc.line.first()?.function_id;
        let func = p.function.iter().find(|x| x.id == id)?;
        p.string_table.get(func.name as usize)
    });
    name.map(String::as_str).unwrap_or("")
}

fn function_names(p: &Profile) -> Vec<&str> {
    strings(p, p.function.iter().map(|f| f.name))
}

fn sample_types(p: &Profile) -> Vec<&str> {
    strings(p, p.sample_type.iter().map(|t| t.ty))
}

/// Files in `dir` named `KIND-...EXT`.
fn files(dir: &Path, kind: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        n.starts_with(&format!("{kind}-")) && n.ends_with(ext)
    });
    v.sort();
    v
}

/// Keeps the node busy (API calls that sign, hash and allocate) for `secs`.
async fn load(api: &mcc::client::Client, dir: &Path, secs: u64) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u32;
    while Instant::now() < until {
        let data: Vec<u8> = (0..256 * 1024u32).map(|i| (i ^ n) as u8).collect();
        let path = dir.join(format!("load-{n}.bin"));
        std::fs::write(&path, &data)?;
        api.add_blob(&path, |_| {}).await?;
        api.node().await?;
        n += 1;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_profile_flag_writes_files_a_pprof_reader_parses() -> Result<()> {
    let traces = tempfile::tempdir()?;
    let dir = traces.path().join("traces");
    let dir_s = dir.to_string_lossy().to_string();
    let mut d = Daemon::start(&[
        "--cpu-profile",
        "2",
        "--heap-profile",
        "2",
        "--goroutine-profile",
        "2",
        "--profile-dir",
        &dir_s,
    ])
    .await?;
    load(&d.api, &d.dir, 3).await?;
    common::wait_until(20, "one profile of each kind", || {
        let dir = dir.clone();
        async move {
            Ok(!files(&dir, "cpu", ".pb.gz").is_empty()
                && !files(&dir, "heap", ".pb.gz").is_empty()
                && !files(&dir, "goroutine", ".pb.gz").is_empty())
        }
    })
    .await?;
    let before = files(&dir, "cpu", ".pb.gz").len();
    d.stop()?;
    // At exit each writer adds the interval since its last profile; none is overwritten.
    assert!(
        files(&dir, "cpu", ".pb.gz").len() > before,
        "no CPU profile at exit"
    );

    // CPU: samples with symbolized function names, and a flamegraph.
    let mut cpu_with_samples = 0;
    for f in files(&dir, "cpu", ".pb.gz") {
        let p = decode(&std::fs::read(&f)?)?;
        assert_eq!(sample_types(&p), vec!["samples", "cpu"], "{f:?}");
        if !p.sample.is_empty() {
            cpu_with_samples += 1;
            let names = function_names(&p);
            assert!(
                names
                    .iter()
                    .any(|n| n.contains("mcc") || n.contains("tokio")),
                "{f:?}: {names:?}"
            );
            // The sampler's own frames are cut off: the interrupted function is the leaf.
            for s in &p.sample {
                let leaf = leaf(&p, s);
                assert!(!leaf.starts_with("backtrace::"), "{f:?}: leaf {leaf}");
            }
        }
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(name.len() > "cpu-20261202T031500Z".len(), "{name}");
    }
    assert!(cpu_with_samples > 0, "no CPU profile has samples");
    let svgs = files(&dir, "cpu", ".svg");
    assert!(!svgs.is_empty(), "no flamegraph");
    assert!(std::fs::read_to_string(&svgs[0])?.contains("<svg"));

    // Heap: jemalloc's live sampled allocations, with function names.
    let heaps = files(&dir, "heap", ".pb.gz");
    let last = decode(&std::fs::read(heaps.last().context("no heap profile")?)?)?;
    assert_eq!(sample_types(&last), vec!["inuse_space"]);
    assert!(!last.sample.is_empty(), "heap profile without samples");
    assert!(!last.mapping.is_empty());
    assert!(
        !function_names(&last).is_empty(),
        "heap profile not symbolized"
    );
    // jemalloc's own frames are cut off: the leaf is the Rust code that allocated.
    for s in &last.sample {
        let leaf = leaf(&last, s);
        assert!(leaf.contains("::"), "heap leaf {leaf:?}");
    }

    // Goroutine: one sample per thread plus the async task count; a text twin.
    let g = files(&dir, "goroutine", ".pb.gz");
    let p = decode(&std::fs::read(g.last().context("no goroutine profile")?)?)?;
    assert_eq!(sample_types(&p), vec!["goroutine"]);
    let names = function_names(&p);
    assert!(
        names.iter().any(|n| n.starts_with("thread tokio")),
        "{names:?}"
    );
    assert!(names.contains(&"async tasks (tokio)"), "{names:?}");
    let txt = files(&dir, "goroutine", ".txt");
    let text = std::fs::read_to_string(txt.last().context("no goroutine text")?)?;
    assert!(
        text.contains("tokio runtime:") && text.contains("threads:"),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_pprof_endpoints_are_behind_the_token() -> Result<()> {
    let d = Daemon::start(&["--api-token", "auto"]).await?;
    let base = d.api.base_url().to_string();
    let token = std::fs::read_to_string(d.dir.join("api-token"))?;
    let http = reqwest::Client::new();
    let get = |path: &str, auth: bool| {
        let mut r = http.get(format!("{base}{path}"));
        if auth {
            r = r.bearer_auth(token.trim());
        }
        r.send()
    };
    assert_eq!(
        get("/debug/pprof/profile?seconds=1", false).await?.status(),
        401
    );
    for bad in ["0", "61", "x"] {
        let r = get(&format!("/debug/pprof/profile?seconds={bad}"), true).await?;
        assert_eq!(r.status(), 400, "seconds={bad}");
        let body: serde_json::Value = r.json().await?;
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("seconds"))
        );
    }
    // A CPU profile of 2 s while the node works.
    let client = d.api.clone().with_token(token.trim());
    // The first profile of a process loads its symbols first: keep the node busy until the
    // answer comes.
    let profile = get("/debug/pprof/profile?seconds=2", true);
    let resp = tokio::select! {
        r = profile => r?,
        l = load(&client, &d.dir, 60) => {
            l?;
            bail!("no CPU profile within 60 s");
        }
    };
    assert_eq!(resp.status(), 200);
    let p = decode(&resp.bytes().await?)?;
    assert_eq!(sample_types(&p), vec!["samples", "cpu"]);
    if p.sample.is_empty() {
        bail!("CPU profile without samples");
    }
    assert!(!function_names(&p).is_empty());
    // Heap sampling is off without --heap-profile.
    let r = get("/debug/pprof/heap", true).await?;
    assert_eq!(r.status(), 409);
    let r = get("/debug/pprof/goroutine?debug=1", true).await?;
    assert_eq!(r.status(), 200);
    assert!(r.text().await?.contains("worker threads"));
    let r = get("/debug/pprof/goroutine", true).await?;
    let p = decode(&r.bytes().await?)?;
    assert!(!p.sample.is_empty());
    Ok(())
}
