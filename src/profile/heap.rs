//! Heap profiles: jemalloc's own sampling profiler. The `mcc` binary links jemalloc with
//! profiling compiled in but inactive (`prof:true,prof_active:false`, see `src/main.rs`);
//! [`activate`] turns sampling on (about one sample per 512 KiB allocated, each with its
//! stack), and a dump lists the sampled allocations still live, scaled to estimated bytes,
//! converted to pprof (`inuse_space`, with function names) by `jemalloc_pprof`.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::output::write_new;
use super::{Error, tick};

/// Turns heap sampling on (allocations are sampled from now on).
#[cfg(target_os = "linux")]
pub fn activate() -> Result<(), Error> {
    let ctl = jemalloc_pprof::PROF_CTL
        .as_ref()
        .ok_or(Error::HeapUnavailable)?;
    let mut ctl = ctl
        .try_lock()
        .map_err(|_| Error::Heap("the heap profiler is busy".into()))?;
    if !ctl.activated() {
        ctl.activate().map_err(|e| Error::Heap(e.to_string()))?;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn activate() -> Result<(), Error> {
    Err(Error::HeapUnavailable)
}

/// Whether heap sampling is on.
#[cfg(target_os = "linux")]
pub fn active() -> bool {
    jemalloc_pprof::PROF_CTL
        .as_ref()
        .and_then(|c| c.try_lock().ok().map(|c| c.activated()))
        .unwrap_or(false)
}

#[cfg(not(target_os = "linux"))]
pub fn active() -> bool {
    false
}

/// The live sampled heap as a gzipped pprof protobuf (blocking: run it off the runtime).
#[cfg(target_os = "linux")]
pub fn dump_blocking() -> Result<Vec<u8>, Error> {
    let ctl = jemalloc_pprof::PROF_CTL
        .as_ref()
        .ok_or(Error::HeapUnavailable)?;
    let mut ctl = ctl.blocking_lock();
    if !ctl.activated() {
        return Err(Error::Heap(
            "heap sampling is off: start the node with --heap-profile N".into(),
        ));
    }
    let gz = ctl
        .dump_pprof()
        .map_err(|e| Error::Heap(format!("{e:#}")))?;
    drop(ctl);
    trim_allocator_frames(&gz)
}

/// Cuts jemalloc's own frames (C functions, often unnamed or named after a neighbouring
/// symbol) off the leaf end of each stack, so that the leaf is the Rust code that allocated.
#[cfg(target_os = "linux")]
fn trim_allocator_frames(gz: &[u8]) -> Result<Vec<u8>, Error> {
    use std::collections::HashMap;
    use std::io::Read;

    use pprof::protos::{Message, Profile};

    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .map_err(|e| Error::Heap(format!("reading jemalloc's profile: {e}")))?;
    let mut p = Profile::decode(raw.as_slice())
        .map_err(|e| Error::Heap(format!("reading jemalloc's profile: {e}")))?;
    let names: HashMap<u64, &str> = p
        .function
        .iter()
        .map(|f| {
            let name = p
                .string_table
                .get(f.name as usize)
                .map_or("", String::as_str);
            (f.id, name)
        })
        .collect();
    // A location is Rust's when one of its (inlined) functions has a path.
    let rust: HashMap<u64, bool> = p
        .location
        .iter()
        .map(|l| {
            let is_rust = l.line.iter().any(|line| {
                names
                    .get(&line.function_id)
                    .is_some_and(|n| n.contains("::"))
            });
            (l.id, is_rust)
        })
        .collect();
    for s in &mut p.sample {
        let own = s
            .location_id
            .iter()
            .take_while(|id| !rust.get(id).copied().unwrap_or(false))
            .count();
        if own < s.location_id.len() {
            s.location_id.drain(..own);
        }
    }
    Ok(super::output::gzip(&p.encode_to_vec()))
}

#[cfg(not(target_os = "linux"))]
pub fn dump_blocking() -> Result<Vec<u8>, Error> {
    Err(Error::HeapUnavailable)
}

/// [`dump_blocking`] on a blocking thread.
pub async fn dump() -> Result<Vec<u8>, Error> {
    tokio::task::spawn_blocking(dump_blocking)
        .await
        .map_err(|e| Error::Heap(e.to_string()))?
}

/// The `--heap-profile` writer: a snapshot every interval and one at stop.
pub(super) async fn run(dir: PathBuf, every: Duration, stop: CancellationToken) {
    loop {
        let stopped = tick(every, &stop).await;
        match dump()
            .await
            .and_then(|p| write_new(&dir, "heap", &[("pb.gz", &p)]))
        {
            Ok(paths) => tracing::debug!(?paths, "wrote a heap profile"),
            Err(e) => tracing::warn!("heap profile: {e}"),
        }
        if stopped {
            break;
        }
    }
}
