//! Adding local files: [`AddSession`], and the in-memory pins that keep the blocks of running
//! adds and commits from being removed.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::sync::{Arc, MutexGuard, PoisonError};

use mcc_blobs::Cid;

use super::{BlobInfo, Inner, StorageError, io_error, to_u64};

/// An add in progress: the blocks written so far. See [`BlobStore::begin_add`](super::BlobStore::begin_add).
///
/// Dropping it without [`commit`](Self::commit) removes the blocks it wrote that nothing
/// else uses; after a crash, the next [`BlobStore::open`](super::BlobStore::open) does.
pub struct AddSession {
    pub(super) store: Arc<Inner>,
    pub(super) blocks: HashSet<Cid>,
}

impl fmt::Debug for AddSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddSession")
            .field("dir", &self.store.dir)
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

impl AddSession {
    /// Stores a block of the file (atomically, not fsynced), unless a file of the same size is
    /// already stored under `cid` (re-adding content writes nothing). The caller computed
    /// `cid` from `data`.
    pub fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StorageError> {
        if self.blocks.contains(cid) {
            return Ok(());
        }
        // Pin before looking at the disk, so a concurrent delete cannot remove an existing
        // copy between the check and the commit.
        self.store.pin(std::iter::once(*cid));
        self.blocks.insert(*cid);
        let path = self.store.block_path(cid);
        let stored =
            fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == to_u64(data.len()));
        if !stored {
            self.store
                .write_block(cid, data)
                .map_err(|e| io_error(&path, e))?;
        }
        Ok(())
    }

    /// Commits the blob `root` of `size` bytes made of the blocks put so far (and `root`),
    /// like [`BlobStore::commit`](super::BlobStore::commit). On error nothing is visible and the blocks are released as
    /// on drop.
    pub fn commit(mut self, root: &Cid, size: u64) -> Result<BlobInfo, StorageError> {
        let info = self.store.commit(root, size, self.blocks.iter().copied())?;
        let blocks: Vec<Cid> = self.blocks.drain().collect();
        self.store.unpin(&blocks);
        Ok(info)
    }

    /// Simulates a crash: forgets the session without removing its blocks.
    #[cfg(test)]
    pub(super) fn crash(mut self) {
        let blocks: Vec<Cid> = self.blocks.drain().collect();
        self.store.unpin(&blocks);
    }
}

impl Drop for AddSession {
    fn drop(&mut self) {
        if self.blocks.is_empty() {
            return;
        }
        let blocks: Vec<Cid> = self.blocks.drain().collect();
        self.store.release(&blocks);
    }
}

impl Inner {
    pub(super) fn lock_pins(&self) -> MutexGuard<'_, HashMap<Cid, usize>> {
        self.pins.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn pin(&self, cids: impl IntoIterator<Item = Cid>) {
        let mut pins = self.lock_pins();
        for cid in cids {
            *pins.entry(cid).or_insert(0) += 1;
        }
    }

    /// Releases pins, removing nothing. Returns the blocks no longer pinned at all.
    pub(super) fn unpin_in(pins: &mut HashMap<Cid, usize>, cids: &[Cid]) -> Vec<Cid> {
        let mut free = Vec::new();
        for cid in cids {
            if let Some(n) = pins.get_mut(cid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    pins.remove(cid);
                    free.push(*cid);
                }
            }
        }
        free
    }

    pub(super) fn unpin(&self, cids: &[Cid]) {
        Self::unpin_in(&mut self.lock_pins(), cids);
    }

    /// Releases the pins of a dropped add session and removes the blocks nothing uses.
    fn release(&self, cids: &[Cid]) {
        let mut pins = self.lock_pins();
        let free = Self::unpin_in(&mut pins, cids);
        match self.remove_unused(&pins, free) {
            Ok(removed) => {
                tracing::debug!(dir = %self.dir.display(), removed,
                    "removed the blocks of an abandoned add");
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e,
                    "cleaning up an abandoned add failed; the next open retries");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::blobs::tests::*;

    #[test]
    fn add_commit_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leaves = [raw(b"one"), raw(b"two"), raw(b"three")];
        let (root, blocks) = dag(&leaves);
        let store = open(dir.path());
        let info = add(&store, &blocks, &root);
        assert_eq!(info.cid, root.to_string());
        assert!(info.cid.starts_with('b'));
        assert_eq!(info.size, 11 + blocks[0].1.len() as u64);
        assert!(info.complete);
        assert_eq!(info.blocks, 4);
        assert!(info.added_unix_ms > 0);
        assert_eq!(store.info(&root), Some(info.clone()));
        assert_eq!(store.list(), vec![info.clone()]);
        let path = store.block_path(&leaves[0].0);
        assert!(path.starts_with(dir.path().join("blocks")));
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some(&*leaves[0].0.to_string())
        );
        drop(store);

        let store = open(dir.path());
        assert_eq!(store.info(&root), Some(info.clone()));
        assert_eq!(store.list(), vec![info]);
        assert!(store.partial_fetches().is_empty());
        for (cid, data) in &blocks {
            assert!(store.has(cid));
            assert_eq!(store.get(cid).expect("get"), Some(data.clone()));
        }
        let blocks: Vec<Cid> = blocks.iter().map(|(c, _)| *c).collect();
        assert_eq!(files(dir.path()), names(&blocks));
        // Adding the same content again changes nothing.
        let again = add(&store, &[raw(b"one")], &root);
        assert_eq!(Some(again), store.info(&root));
        assert_eq!(store.list().len(), 1);
    }

    #[test]
    fn dropped_add_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = raw(b"shared");
        let (kept_root, kept) = dag(&[shared.clone(), raw(b"kept")]);
        let store = open(dir.path());
        add(&store, &kept, &kept_root);

        let (root, blocks) = dag(&[shared.clone(), raw(b"unique 1"), raw(b"unique 2")]);
        let mut session = store.begin_add().expect("begin");
        for (cid, data) in &blocks {
            session.put(cid, data).expect("put");
        }
        assert!(store.has(&blocks[2].0));
        drop(session);
        assert!(store.info(&root).is_none());
        assert_eq!(store.list().len(), 1);
        let kept_cids: Vec<Cid> = kept.iter().map(|(c, _)| *c).collect();
        assert_eq!(files(dir.path()), names(&kept_cids));
        drop(store);

        let store = open(dir.path());
        assert!(store.info(&root).is_none());
        assert_eq!(files(dir.path()), names(&kept_cids));
        assert_eq!(store.get(&shared.0).expect("get"), Some(shared.1));
    }

    #[test]
    fn concurrent_adds_of_the_same_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let (root, blocks) = dag(&[raw(b"same"), raw(b"content")]);
        let mut first = store.begin_add().expect("begin");
        let mut second = store.begin_add().expect("begin");
        for (cid, data) in &blocks {
            first.put(cid, data).expect("put");
            second.put(cid, data).expect("put");
        }
        drop(first);
        for (cid, _) in &blocks {
            assert!(store.has(cid), "kept for the second add");
        }
        let info = second.commit(&root, 11).expect("commit");
        assert_eq!(store.list(), vec![info]);
    }
}
