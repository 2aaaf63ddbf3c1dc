//! The daemon's profiling flags ([`ProfileArgs`]), MCC's `--cpu-profile`, `--heap-profile`,
//! `--goroutine-profile` and `--profile-dir`. Flattened into [`super::DaemonArgs`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::FileConfig;
use crate::profile;

/// Profiling options (also read from the YAML config file). Each interval is in seconds; 0
/// (the default) turns that profile off.
#[derive(Debug, Default, Args)]
pub struct ProfileArgs {
    /// Seconds between CPU profile writes (pprof + flamegraph SVG of the last interval, also
    /// at exit); 0 is off [default: 0].
    #[arg(long, env = "MCC_CPU_PROFILE", value_name = "SECONDS")]
    pub cpu_profile: Option<u64>,
    /// Seconds between heap profile writes (jemalloc, sampled live allocations, pprof; also at
    /// exit); 0 is off [default: 0].
    #[arg(long, env = "MCC_HEAP_PROFILE", value_name = "SECONDS")]
    pub heap_profile: Option<u64>,
    /// Seconds between dumps of the process's threads and async runtime (text and pprof; also
    /// at exit); 0 is off [default: 0].
    #[arg(long, env = "MCC_GOROUTINE_PROFILE", value_name = "SECONDS")]
    pub goroutine_profile: Option<u64>,
    /// Folder for profile files, relative to the working directory [default: traces].
    #[arg(long, env = "MCC_PROFILE_DIR", value_name = "DIR")]
    pub profile_dir: Option<PathBuf>,
}

fn interval(secs: Option<u64>) -> Option<Duration> {
    secs.filter(|s| *s > 0).map(Duration::from_secs)
}

impl ProfileArgs {
    /// Flags win over the file, the file over the defaults.
    pub fn resolve(self, file: &FileConfig) -> profile::Config {
        profile::Config {
            cpu: interval(self.cpu_profile.or(file.cpu_profile)),
            heap: interval(self.heap_profile.or(file.heap_profile)),
            goroutine: interval(self.goroutine_profile.or(file.goroutine_profile)),
            dir: self
                .profile_dir
                .or(file.profile_dir.clone())
                .unwrap_or_else(|| PathBuf::from(profile::DEFAULT_DIR)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_off_and_flags_win_over_the_file() {
        let file = FileConfig::parse(
            "cpu-profile: 30\nheap-profile: 0\ngoroutine-profile: 5\nprofile-dir: /tmp/p\n",
        )
        .unwrap();
        let c = ProfileArgs::default().resolve(&file);
        assert_eq!(c.cpu, Some(Duration::from_secs(30)));
        assert_eq!(c.heap, None);
        assert_eq!(c.goroutine, Some(Duration::from_secs(5)));
        assert_eq!(c.dir, PathBuf::from("/tmp/p"));
        let flags = ProfileArgs {
            cpu_profile: Some(0),
            heap_profile: Some(7),
            profile_dir: Some("here".into()),
            ..ProfileArgs::default()
        };
        let c = flags.resolve(&file);
        assert_eq!(c.cpu, None);
        assert_eq!(c.heap, Some(Duration::from_secs(7)));
        assert_eq!(c.dir, PathBuf::from("here"));
        let c = ProfileArgs::default().resolve(&FileConfig::default());
        assert!(!c.enabled());
        assert_eq!(c.dir, PathBuf::from("traces"));
    }
}
