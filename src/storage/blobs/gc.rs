//! Removing blobs and blocks: [`BlobStore::delete`](super::BlobStore::delete), the removal of
//! unused block files (unpinned, in no complete blob, reached by no partial fetch), and the
//! mark-and-sweep of [`BlobStore::open`](super::BlobStore::open).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use mcc_blobs::Cid;
use redb::ReadableDatabase;

use super::blocks::{TMP_PREFIX, shard_of};
use super::index::{BLOB_BLOCKS, BLOBS, BLOCK_REFS, State, decode_row, unlink_blocks};
use super::{Inner, StorageError, Txn, io_error};

/// What the sweep of [`BlobStore::open`](super::BlobStore::open) removed.
pub(super) struct Swept {
    pub(super) temp_files: usize,
    pub(super) orphans: usize,
}

impl Inner {
    /// Removes the files of those `candidates` that are not pinned, listed by no complete blob
    /// and reached by no partial fetch. Must be called with the pins lock held (`pins`).
    /// Returns how many files were removed.
    pub(super) fn remove_unused(
        &self,
        pins: &HashMap<Cid, usize>,
        candidates: impl IntoIterator<Item = Cid>,
    ) -> Result<usize, StorageError> {
        let candidates: Vec<Cid> = candidates
            .into_iter()
            .filter(|c| !pins.contains_key(c))
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let unreferenced = self.read(|txn| {
            let refs = txn.open_table(BLOCK_REFS)?;
            let mut out = Vec::new();
            for cid in candidates {
                if refs.get(cid.to_bytes().as_slice())?.is_none() {
                    out.push(cid);
                }
            }
            Ok(out)
        })?;
        if unreferenced.is_empty() {
            return Ok(0);
        }
        let needed = self.reachable(&self.fetch_roots()?)?;
        let mut removed = 0;
        for cid in unreferenced.iter().filter(|c| !needed.contains(c)) {
            let path = self.block_path(cid);
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e,
                        "cannot remove unused block; the next open retries");
                }
            }
        }
        Ok(removed)
    }

    pub(super) fn delete(&self, root: &Cid) -> Result<bool, StorageError> {
        let key = root.to_bytes();
        let pins = self.lock_pins();
        // The blocks a partial fetch owns are only known by walking its DAG.
        let fetching = self.read(|txn| {
            let blobs = txn.open_table(BLOBS)?;
            Ok(blobs
                .get(key.as_slice())?
                .map(|v| decode_row(v.value()).is_ok_and(|r| r.state == State::Fetching)))
        })?;
        let Some(fetching) = fetching else {
            return Ok(false);
        };
        let mut candidates: Vec<Cid> = if fetching {
            self.reachable(std::slice::from_ref(root))?
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        let freed = self.write(|txn| {
            let mut blobs = txn.open_table(BLOBS)?;
            if blobs.remove(key.as_slice())?.is_none() {
                return Ok(Txn::Abort(None));
            }
            let mut blob_blocks = txn.open_table(BLOB_BLOCKS)?;
            let mut refs = txn.open_table(BLOCK_REFS)?;
            let freed = unlink_blocks(&mut blob_blocks, &mut refs, &key)?;
            Ok(Txn::Commit(Some(freed)))
        })?;
        let Some(freed) = freed else {
            return Ok(false);
        };
        candidates.extend(
            freed
                .iter()
                .filter_map(|b| Cid::try_from(b.as_slice()).ok()),
        );
        // The blob is gone from the index; files left behind are swept by the next open.
        match self.remove_unused(&pins, candidates) {
            Ok(removed) => {
                tracing::debug!(%root, removed, "deleted blob");
            }
            Err(e) => {
                tracing::warn!(%root, error = %e,
                    "deleted blob but could not remove its blocks; the next open retries");
            }
        }
        Ok(true)
    }

    /// Removes `.tmp-*` files and the block files no complete blob lists and no partial fetch
    /// reaches. Runs at open, before anyone else uses the store.
    pub(super) fn sweep(&self) -> Result<Swept, StorageError> {
        let needed = self.reachable(&self.fetch_roots()?)?;
        let mut swept = Swept {
            temp_files: 0,
            orphans: 0,
        };
        let dir = &self.blocks_dir;
        let shards = fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
        let txn = self.db.begin_read().map_err(|e| self.redb_error(e))?;
        let refs = txn.open_table(BLOCK_REFS).map_err(|e| self.redb_error(e))?;
        for shard in shards {
            let shard = shard.map_err(|e| io_error(dir, e))?;
            let shard_path = shard.path();
            let shard_name = shard.file_name();
            let shard_name = shard_name.to_string_lossy();
            if shard_name.starts_with(TMP_PREFIX) {
                swept.temp_files += usize::from(remove_leftover(&shard_path));
                continue;
            }
            let is_dir = shard
                .file_type()
                .map_err(|e| io_error(&shard_path, e))?
                .is_dir();
            if !is_dir {
                tracing::warn!(path = %shard_path.display(), "ignoring unexpected file");
                continue;
            }
            let files = fs::read_dir(&shard_path).map_err(|e| io_error(&shard_path, e))?;
            for file in files {
                let file = file.map_err(|e| io_error(&shard_path, e))?;
                let path = file.path();
                let name = file.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(TMP_PREFIX) {
                    swept.temp_files += usize::from(remove_leftover(&path));
                    continue;
                }
                let cid = match name.parse::<Cid>() {
                    Ok(cid) if cid.to_string() == name && shard_of(&name) == shard_name => cid,
                    _ => {
                        tracing::warn!(path = %path.display(), "ignoring unexpected file");
                        continue;
                    }
                };
                let referenced = refs
                    .get(cid.to_bytes().as_slice())
                    .map_err(|e| self.redb_error(e))?
                    .is_some();
                if referenced || needed.contains(&cid) {
                    continue;
                }
                swept.orphans += usize::from(remove_leftover(&path));
            }
        }
        if swept.orphans > 0 {
            tracing::info!(dir = %self.dir.display(), blocks = swept.orphans,
                "removed blocks of unfinished adds");
        }
        Ok(swept)
    }
}

/// Removes a leftover file found by the sweep; returns whether it did.
fn remove_leftover(path: &Path) -> bool {
    match fs::remove_file(path) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove leftover file");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::blobs::tests::*;

    #[test]
    fn crash_during_add_is_swept_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let (kept_root, kept) = dag(&[raw(b"kept")]);
        add(&store, &kept, &kept_root);

        let (root, blocks) = dag(&[raw(b"a"), raw(b"b"), raw(b"c")]);
        let mut session = store.begin_add().expect("begin");
        for (cid, data) in &blocks {
            session.put(cid, data).expect("put");
        }
        session.crash();
        // A block put outside any fetch or add, and half-written temp files.
        let loose = raw(b"loose");
        store.put(&loose.0, &loose.1).expect("put");
        let shard = store.block_path(&blocks[1].0);
        let shard = shard.parent().expect("shard");
        fs::write(shard.join(".tmp-abc123"), b"half").expect("write");
        fs::write(dir.path().join(BLOCKS_DIR).join(".tmp-xyz"), b"half").expect("write");
        // Foreign files are left alone.
        fs::write(shard.join("README"), b"mine").expect("write");
        drop(store);

        let store = open(dir.path());
        assert!(store.info(&root).is_none());
        assert_eq!(store.list().len(), 1);
        assert!(store.partial_fetches().is_empty());
        for (cid, _) in &blocks {
            assert!(!store.has(cid));
        }
        assert!(!store.has(&loose.0));
        let mut expected: Vec<Cid> = kept.iter().map(|(c, _)| *c).collect();
        expected.sort();
        let mut want = names(&expected);
        want.insert("README".into());
        assert_eq!(files(dir.path()), want);
        for (cid, data) in &kept {
            assert_eq!(store.get(cid).expect("get").as_ref(), Some(data));
        }
    }

    const CRASH_DIR_ENV: &str = "MCC_BLOBS_TEST_CRASH_DIR";

    /// The child of `process_death_mid_add`: commits a blob, starts an add and a fetch, then
    /// exits without running any destructor (as if killed).
    #[test]
    #[ignore = "run by process_death_mid_add in a child process"]
    fn crash_child() {
        let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
            return;
        };
        let store = open(Path::new(&dir));
        let (kept_root, kept) = dag(&[raw(b"kept")]);
        add(&store, &kept, &kept_root);
        let (_, blocks) = dag(&[raw(b"a"), raw(b"b")]);
        let mut session = store.begin_add().expect("begin");
        for (cid, data) in &blocks {
            session.put(cid, data).expect("put");
        }
        let (fetch_root, fetch_blocks) = dag(&[raw(b"f1"), raw(b"f2")]);
        store.begin_fetch(&fetch_root).expect("begin fetch");
        for (cid, data) in &fetch_blocks[..2] {
            store.put(cid, data).expect("put");
        }
        std::process::exit(42);
    }

    #[test]
    fn process_death_mid_add() {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args([
                "--exact",
                "storage::blobs::gc::tests::crash_child",
                "--ignored",
            ])
            .env(CRASH_DIR_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("spawn");
        assert_eq!(status.code(), Some(42));

        let store = open(dir.path());
        let (kept_root, kept) = dag(&[raw(b"kept")]);
        let (add_root, added) = dag(&[raw(b"a"), raw(b"b")]);
        let (fetch_root, fetched) = dag(&[raw(b"f1"), raw(b"f2")]);
        assert_eq!(
            store.list().into_iter().map(|i| i.cid).collect::<Vec<_>>(),
            vec![kept_root.to_string()]
        );
        assert!(store.info(&add_root).is_none());
        assert_eq!(store.partial_fetches(), vec![fetch_root]);
        for (cid, _) in &added {
            assert!(!store.has(cid));
        }
        let mut want: Vec<Cid> = kept.iter().map(|(c, _)| *c).collect();
        want.extend(fetched[..2].iter().map(|(c, _)| *c));
        assert_eq!(files(dir.path()), names(&want));
    }

    #[test]
    fn delete_keeps_shared_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let shared = raw(b"shared");
        let (a, a_blocks) = dag(&[shared.clone(), raw(b"only a")]);
        let (b, b_blocks) = dag(&[raw(b"only b"), shared.clone()]);
        add(&store, &a_blocks, &a);
        add(&store, &b_blocks, &b);

        assert!(store.delete(&a).expect("delete"));
        assert!(!store.delete(&a).expect("delete again"));
        assert!(store.info(&a).is_none());
        let b_cids: Vec<Cid> = b_blocks.iter().map(|(c, _)| *c).collect();
        assert_eq!(files(dir.path()), names(&b_cids));
        for (cid, data) in &b_blocks {
            assert_eq!(store.get(cid).expect("get").as_ref(), Some(data));
        }
        drop(store);
        let store = open(dir.path());
        assert_eq!(files(dir.path()), names(&b_cids));
        assert!(store.delete(&b).expect("delete"));
        assert!(files(dir.path()).is_empty());
        assert!(store.list().is_empty());
        assert!(!store.delete(&raw(b"never").0).expect("unknown"));
    }

    #[test]
    fn delete_keeps_blocks_of_partial_fetches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let shared = raw(b"shared");
        let (a, a_blocks) = dag(&[shared.clone(), raw(b"only a")]);
        add(&store, &a_blocks, &a);

        let x = raw(b"x");
        let (f, f_blocks) = dag(&[shared.clone(), x.clone(), raw(b"not yet")]);
        store.begin_fetch(&f).expect("begin");
        store.put(&f_blocks[0].0, &f_blocks[0].1).expect("put root");
        store.put(&x.0, &x.1).expect("put");
        // The fetch finds `shared` already stored and does not fetch it.

        assert!(store.delete(&a).expect("delete"));
        assert!(store.has(&shared.0));
        assert!(!store.has(&a_blocks[0].0));
        assert!(!store.has(&a_blocks[2].0));
        assert_eq!(files(dir.path()), names(&[f, shared.0, x.0]));

        // Deleting the partial fetch removes what it had.
        assert!(store.delete(&f).expect("delete fetch"));
        assert!(store.partial_fetches().is_empty());
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn deleting_a_partial_dag_bomb_walks_each_block_once() {
        // Depth 4: 174^4 paths to the leaf, 5 distinct blocks.
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let leaf = raw(b"x");
        store.put(&leaf.0, &leaf.1).unwrap();
        let mut child = leaf.0;
        for _ in 0..4 {
            let (cid, data) = node(&vec![child; mcc_blobs::MAX_LINKS]);
            store.put(&cid, &data).unwrap();
            child = cid;
        }
        store.begin_fetch(&child).unwrap();
        let started = std::time::Instant::now();
        drop(store);
        // Opening walks the partial fetch (and keeps its blocks)...
        let store = open(dir.path());
        assert_eq!(files(dir.path()).len(), 5);
        // ...and so does deleting it.
        assert!(store.delete(&child).unwrap());
        assert!(files(dir.path()).is_empty());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
