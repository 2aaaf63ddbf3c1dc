//! Block files on disk: where a block lives (`blocks/<xy>/<cid>`, see the [module
//! docs](super)), atomic writes, verified reads, and the fsyncs that come before a commit.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use mcc_blobs::Cid;

use super::{Inner, StorageError, io_error};

pub(super) const BLOCKS_DIR: &str = "blocks";
pub(super) const TMP_PREFIX: &str = ".tmp-";

impl Inner {
    pub(super) fn block_path(&self, cid: &Cid) -> PathBuf {
        let name = cid.to_string();
        self.blocks_dir.join(shard_of(&name)).join(&name)
    }

    pub(super) fn has(&self, cid: &Cid) -> bool {
        self.block_path(cid).is_file()
    }

    /// Writes a block file atomically: a temp file in its folder, renamed over the final name.
    pub(super) fn write_block(&self, cid: &Cid, data: &[u8]) -> io::Result<()> {
        let name = cid.to_string();
        let shard = self.blocks_dir.join(shard_of(&name));
        fs::create_dir_all(&shard)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&shard)?;
        tmp.write_all(data)?;
        tmp.persist(shard.join(&name)).map_err(|e| e.error)?;
        Ok(())
    }

    /// The verified bytes of a block; `None` if the file is missing or does not match `cid`.
    pub(super) fn read_block(&self, cid: &Cid) -> io::Result<Option<Vec<u8>>> {
        let path = self.block_path(cid);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if mcc_blobs::verify(cid, &data) {
            Ok(Some(data))
        } else {
            tracing::warn!(path = %path.display(), %cid,
                "block file does not match its CID; treating it as missing");
            Ok(None)
        }
    }

    /// Fsyncs the block files, then their folders and the `blocks` folder.
    pub(super) fn sync_blocks(&self, cids: &[Cid]) -> Result<(), StorageError> {
        let mut dirs = BTreeSet::new();
        for cid in cids {
            let path = self.block_path(cid);
            sync_file(&path).map_err(|e| io_error(&path, e))?;
            if let Some(dir) = path.parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        dirs.insert(self.blocks_dir.clone());
        for dir in &dirs {
            sync_dir(dir).map_err(|e| io_error(dir, e))?;
        }
        Ok(())
    }
}

/// The folder of a block: the two characters before the last one of its CID string.
pub(super) fn shard_of(name: &str) -> &str {
    let end = name.len().saturating_sub(1);
    name.get(end.saturating_sub(2)..end).unwrap_or("__")
}

fn sync_file(path: &Path) -> io::Result<()> {
    // Some platforms can only flush a file opened for writing.
    fs::OpenOptions::new()
        .read(true)
        .write(!cfg!(unix))
        .open(path)?
        .sync_all()
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match fs::File::open(path) {
        Ok(dir) => {
            let synced = dir.sync_all();
            // Not every platform can fsync a folder.
            if cfg!(unix) { synced } else { Ok(()) }
        }
        Err(e) if cfg!(unix) => Err(e),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::blobs::tests::*;

    #[test]
    fn corrupted_block_is_not_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let leaf = raw(b"precious");
        let (root, blocks) = dag(std::slice::from_ref(&leaf));
        add(&store, &blocks, &root);
        fs::write(store.block_path(&leaf.0), b"PRECIOUS").expect("overwrite");
        assert_eq!(store.get(&leaf.0).expect("get"), None);
        let shared: Arc<dyn BlockStore> = Arc::new(store.clone());
        assert_eq!(shared.get(&leaf.0).expect("get"), None);
        // The other block is fine.
        assert_eq!(store.get(&root).expect("get"), Some(blocks[0].1.clone()));
        // Storing the block again (a fetcher that found it missing) repairs it.
        shared.put(&leaf.0, &leaf.1).expect("put");
        assert_eq!(store.get(&leaf.0).expect("get"), Some(leaf.1.clone()));
        // An add of the same content rewrites a truncated copy.
        fs::write(store.block_path(&leaf.0), b"PREC").expect("truncate");
        add(&store, &blocks, &root);
        assert_eq!(store.get(&leaf.0).expect("get"), Some(leaf.1));
    }

    #[test]
    fn works_as_a_block_store_trait_object() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let blocks: Arc<dyn BlockStore> = Arc::new(store.clone());
        let (cid, data) = raw(b"via the trait");
        assert!(!blocks.has(&cid));
        assert_eq!(blocks.get(&cid).expect("get"), None);
        blocks.put(&cid, &data).expect("put");
        blocks.put(&cid, &data).expect("put twice");
        assert!(blocks.has(&cid));
        assert_eq!(blocks.get(&cid).expect("get"), Some(data));
        let info = store.commit(&cid, 13, &[]).expect("commit");
        assert_eq!(info.blocks, 1);
        let from_thread = std::thread::spawn(move || blocks.has(&cid))
            .join()
            .expect("thread");
        assert!(from_thread);
    }

    #[test]
    fn shard_names() {
        assert_eq!(shard_of("bafkreiabcdefxyz"), "xy");
        assert_eq!(shard_of("b"), "");
    }
}
