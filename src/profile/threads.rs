//! MCC's "goroutine" profile in Rust terms: what the process's threads and async runtime are
//! doing at one instant.
//!
//! tokio's task dump (stacks of every async task) exists only in builds with
//! `--cfg tokio_unstable`, which this project does not use; so this dump shows, honestly:
//! - every OS thread of the process (`/proc/self/task`): id, name, scheduler state (running,
//!   sleeping, disk wait, ...), user and system CPU seconds, and the kernel function it waits
//!   in (`wchan`, when the kernel shows it);
//! - the tokio runtime's stable counters: worker threads, alive async tasks, tasks waiting in
//!   the global queue, and each worker's busy time.
//!
//! Written as text (`goroutine-T.txt`) and as pprof (`goroutine-T.pb.gz`, sample type
//! `goroutine/count`): one sample per thread whose two-frame "stack" is `thread NAME` above
//! `STATE [in WCHAN]`, and one sample `async tasks (tokio)` valued the number of alive tasks.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use pprof::protos;
use tokio_util::sync::CancellationToken;

use super::output::{gzip, timestamp, write_new};
use super::tick;

/// One OS thread of this process.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    pub tid: u32,
    pub name: String,
    /// `R (running)`, `S (sleeping)`, ...
    pub state: String,
    pub user_secs: f64,
    pub system_secs: f64,
    /// Kernel function the thread sleeps in, if shown.
    pub wchan: Option<String>,
}

/// The tokio runtime's counters (stable API).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Runtime {
    pub workers: usize,
    pub alive_tasks: usize,
    pub global_queue_depth: usize,
    pub worker_busy: Vec<Duration>,
}

/// One dump.
#[derive(Debug, Clone)]
pub struct Dump {
    pub time: SystemTime,
    pub pid: u32,
    pub threads: Vec<Thread>,
    pub runtime: Option<Runtime>,
}

fn state_name(c: char) -> &'static str {
    match c {
        'R' => "running",
        'S' => "sleeping",
        'D' => "disk sleep",
        'Z' => "zombie",
        'T' => "stopped",
        't' => "tracing stop",
        'X' => "dead",
        'I' => "idle",
        'P' => "parked",
        _ => "unknown",
    }
}

/// Parses `/proc/.../stat`: name, state letter, utime and stime in clock ticks.
fn parse_stat(stat: &str) -> Option<(String, char, u64, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    // After the state: ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt,
    // then utime and stime.
    let mut rest = rest.skip(10);
    let utime = rest.next()?.parse().ok()?;
    let stime = rest.next()?.parse().ok()?;
    Some((name, state, utime, stime))
}

/// The threads of this process (empty where `/proc` is missing).
pub fn threads() -> Vec<Thread> {
    // SAFETY: sysconf only reads a system setting.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    let Ok(entries) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue; // The thread ended meanwhile.
        };
        let Some((name, state, utime, stime)) = parse_stat(&stat) else {
            continue;
        };
        let wchan = std::fs::read_to_string(e.path().join("wchan"))
            .ok()
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty() && w != "0");
        out.push(Thread {
            tid,
            name,
            state: format!("{state} ({})", state_name(state)),
            user_secs: utime as f64 / ticks,
            system_secs: stime as f64 / ticks,
            wchan,
        });
    }
    out.sort_by_key(|t| t.tid);
    out
}

/// The current tokio runtime's counters, if called inside one.
pub fn runtime() -> Option<Runtime> {
    let m = tokio::runtime::Handle::try_current().ok()?.metrics();
    Some(Runtime {
        workers: m.num_workers(),
        alive_tasks: m.num_alive_tasks(),
        global_queue_depth: m.global_queue_depth(),
        worker_busy: (0..m.num_workers())
            .map(|w| m.worker_total_busy_duration(w))
            .collect(),
    })
}

/// Takes a dump now.
pub fn dump() -> Dump {
    Dump {
        time: SystemTime::now(),
        pid: std::process::id(),
        threads: threads(),
        runtime: runtime(),
    }
}

impl Dump {
    /// The human-readable dump.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "mcc thread and async runtime dump (goroutine profile)\ntime: {}\npid: {}",
            timestamp(self.time),
            self.pid
        );
        match &self.runtime {
            Some(r) => {
                let _ = writeln!(
                    s,
                    "\ntokio runtime: {} worker threads, {} alive async tasks, {} in the global \
                     queue",
                    r.workers, r.alive_tasks, r.global_queue_depth
                );
                for (i, b) in r.worker_busy.iter().enumerate() {
                    let _ = writeln!(s, "  worker {i}: busy {:.3} s in total", b.as_secs_f64());
                }
            }
            None => {
                let _ = writeln!(s, "\ntokio runtime: none");
            }
        }
        let _ = writeln!(
            s,
            "\n{} threads:\n{:>8}  {:<16} {:<16} {:>9} {:>9}  wchan",
            self.threads.len(),
            "tid",
            "name",
            "state",
            "user s",
            "sys s"
        );
        for t in &self.threads {
            let _ = writeln!(
                s,
                "{:>8}  {:<16} {:<16} {:>9.2} {:>9.2}  {}",
                t.tid,
                t.name,
                t.state,
                t.user_secs,
                t.system_secs,
                t.wchan.as_deref().unwrap_or("-")
            );
        }
        s
    }

    /// The dump as a pprof `Profile` (see the module doc for its shape).
    pub fn pprof(&self) -> protos::Profile {
        let mut b = Builder::default();
        let goroutine = b.string("goroutine");
        let count = b.string("count");
        let tid_key = b.string("tid");
        let mut samples = Vec::new();
        for t in &self.threads {
            let leaf = match &t.wchan {
                Some(w) => format!("{} in {w}", t.state),
                None => t.state.clone(),
            };
            let stack = vec![b.location(&leaf), b.location(&format!("thread {}", t.name))];
            samples.push(protos::Sample {
                location_id: stack,
                value: vec![1],
                label: vec![protos::Label {
                    key: tid_key,
                    num: i64::from(t.tid),
                    ..protos::Label::default()
                }],
            });
        }
        if let Some(r) = &self.runtime {
            samples.push(protos::Sample {
                location_id: vec![b.location("async tasks (tokio)")],
                value: vec![r.alive_tasks as i64],
                label: vec![],
            });
        }
        let time_nanos = self
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        protos::Profile {
            sample_type: vec![protos::ValueType {
                ty: goroutine,
                unit: count,
            }],
            sample: samples,
            location: b.locations,
            function: b.functions,
            string_table: b.strings,
            time_nanos,
            period_type: Some(protos::ValueType {
                ty: goroutine,
                unit: count,
            }),
            period: 1,
            ..protos::Profile::default()
        }
    }
}

/// String, function and location tables of a pprof profile (one location per function).
struct Builder {
    strings: Vec<String>,
    index: HashMap<String, i64>,
    functions: Vec<protos::Function>,
    locations: Vec<protos::Location>,
    by_name: HashMap<String, u64>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            // Index 0 is the empty string, as pprof requires.
            strings: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
            functions: Vec::new(),
            locations: Vec::new(),
            by_name: HashMap::new(),
        }
    }
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }

    fn location(&mut self, function: &str) -> u64 {
        if let Some(id) = self.by_name.get(function) {
            return *id;
        }
        let id = self.functions.len() as u64 + 1;
        let name = self.string(function);
        self.functions.push(protos::Function {
            id,
            name,
            system_name: name,
            ..protos::Function::default()
        });
        self.locations.push(protos::Location {
            id,
            line: vec![protos::Line {
                function_id: id,
                line: 0,
            }],
            ..protos::Location::default()
        });
        self.by_name.insert(function.to_string(), id);
        id
    }
}

/// The `--goroutine-profile` writer: a dump every interval and one at stop.
pub(super) async fn run(dir: PathBuf, every: Duration, stop: CancellationToken) {
    use pprof::protos::Message;
    loop {
        let stopped = tick(every, &stop).await;
        let d = dump();
        let text = d.text();
        let pb = gzip(&d.pprof().encode_to_vec());
        match write_new(
            &dir,
            "goroutine",
            &[("txt", text.as_bytes()), ("pb.gz", &pb)],
        ) {
            Ok(paths) => tracing::debug!(?paths, "wrote a goroutine profile"),
            Err(e) => tracing::warn!("goroutine profile: {e}"),
        }
        if stopped {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_names() {
        let stat = "1234 (tokio (rt) w) S 1 1 1 0 -1 4194624 10 0 0 0 250 30 0 0 20 0 9 0";
        let (name, state, u, s) = parse_stat(stat).unwrap();
        assert_eq!(name, "tokio (rt) w");
        assert_eq!(state, 'S');
        assert_eq!((u, s), (250, 30));
        assert!(parse_stat("garbage").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dump_lists_this_thread_and_the_runtime() {
        use pprof::protos::Message;
        let d = dump();
        assert!(!d.threads.is_empty());
        let r = d.runtime.clone().unwrap();
        assert_eq!(r.workers, 2);
        assert!(d.text().contains("2 worker threads"));
        let p = protos::Profile::decode(d.pprof().encode_to_vec().as_slice()).unwrap();
        assert_eq!(p.sample.len(), d.threads.len() + 1);
        let names: Vec<&str> = p
            .function
            .iter()
            .map(|f| p.string_table[f.name as usize].as_str())
            .collect();
        assert!(names.iter().any(|n| n.starts_with("thread ")), "{names:?}");
    }
}
