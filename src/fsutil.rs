//! Small file-system helpers shared by everything that persists state.

use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temp file in the same folder, fsync, rename, then
/// fsync of the folder. Readers see either the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_via_temp(path, bytes, mode, Replace::Yes)
}

/// Like [`write_atomic`], but never replaces an existing file (or dangling symlink): the
/// final rename is a no-clobber link, so two writers racing for the same key file cannot
/// overwrite each other. Fails with `AlreadyExists` when `path` exists.
pub fn write_new_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_via_temp(path, bytes, mode, Replace::No)
}

#[derive(PartialEq)]
enum Replace {
    Yes,
    No,
}

fn write_via_temp(path: &Path, bytes: &[u8], mode: u32, replace: Replace) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = builder(mode).tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if replace == Replace::Yes {
        tmp.persist(path).map_err(|e| e.error)?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
    }
    if let Ok(d) = std::fs::File::open(dir) {
        // Not every platform can fsync a directory; the rename is already done.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `dir` (and its parents) if needed and makes it private to this user (0700): it
/// holds the node's key, its records and its blobs. An existing folder open to others is
/// tightened, with a log line.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
            tracing::info!(
                path = %dir.display(),
                "made the data folder private (mode {:o} -> {:o})",
                mode & 0o777,
                mode & 0o700
            );
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

fn builder(mode: u32) -> tempfile::Builder<'static, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(".tmp-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    b
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("f");
        super::write_atomic(&p, b"one", 0o644).unwrap();
        super::write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn write_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        super::write_new_atomic(&p, b"first", 0o600).unwrap();
        let e = super::write_new_atomic(&p, b"second", 0o600).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        // No temp file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn private_dir_is_0700_and_tightens() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a").join("data");
        super::private_dir(&d).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        super::private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
    }
}
