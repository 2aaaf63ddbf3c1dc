//! Profile file names (`KIND-YYYYMMDDTHHMMSSZ[-N].EXT`) and writes that never overwrite.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::Error;

/// `t` in UTC as `YYYYMMDDTHHMMSSZ`.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Writes the files of one profile, `KIND-TIME.EXT` for each `(EXT, bytes)`, all with the same
/// base name; a name already taken (two profiles in one second) gets `-1`, `-2`, ... Returns
/// the paths written.
pub fn write_new(dir: &Path, kind: &str, files: &[(&str, &[u8])]) -> Result<Vec<PathBuf>, Error> {
    let stem = format!("{kind}-{}", timestamp(SystemTime::now()));
    for n in 0..1000u32 {
        let base = if n == 0 {
            stem.clone()
        } else {
            format!("{stem}-{n}")
        };
        let paths: Vec<PathBuf> = files
            .iter()
            .map(|(ext, _)| dir.join(format!("{base}.{ext}")))
            .collect();
        if paths.iter().any(|p| p.exists()) {
            continue;
        }
        let mut written = Vec::new();
        let mut taken = false;
        for (path, (_, bytes)) in paths.iter().zip(files) {
            match create_new(path, bytes) {
                Ok(()) => written.push(path.clone()),
                // Taken meanwhile: another base name for all of them.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    taken = true;
                    break;
                }
                Err(source) => {
                    return Err(Error::Write {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        if !taken {
            return Ok(written);
        }
        for p in written {
            let _ = std::fs::remove_file(p);
        }
    }
    Err(Error::Write {
        path: dir.join(stem),
        source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free file name"),
    })
}

fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Gzip of `bytes` (pprof files are gzipped protobuf).
pub(super) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "19700101T000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_181_300);
        assert_eq!(timestamp(t), "20261202T031500Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(leap), "20000229T000000Z");
    }

    #[test]
    fn names_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_new(dir.path(), "cpu", &[("pb.gz", b"a"), ("svg", b"b")]).unwrap();
        let b = write_new(dir.path(), "cpu", &[("pb.gz", b"c"), ("svg", b"d")]).unwrap();
        assert_eq!(a.len(), 2);
        assert_ne!(a[0], b[0]);
        assert_eq!(std::fs::read(&a[0]).unwrap(), b"a");
        assert_eq!(std::fs::read(&b[1]).unwrap(), b"d");
        let name = a[0].file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("cpu-") && name.ends_with("Z.pb.gz"),
            "{name}"
        );
    }
}
