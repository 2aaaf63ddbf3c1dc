//! Partial fetches: the `fetching` rows of the index, and the blocks a fetch owns (those
//! reachable from its root through the dag-pb nodes already stored).

use std::collections::HashSet;

use mcc_blobs::Cid;
use redb::ReadableTable;

use super::index::{BLOBS, BlobRow, State, decode_row, encode_row};
use super::{Inner, StorageError, Txn, io_error, now_ms};

impl Inner {
    pub(super) fn begin_fetch(&self, root: &Cid) -> Result<(), StorageError> {
        let key = root.to_bytes();
        let row = encode_row(&BlobRow {
            state: State::Fetching,
            size: 0,
            blocks: 0,
            added_ms: now_ms(),
            seq: 0,
        });
        let path = self.db_path.as_path();
        self.write(|txn| {
            let mut blobs = txn.open_table(BLOBS)?;
            let existing = blobs.get(key.as_slice())?.map(|v| decode_row(v.value()));
            match existing {
                Some(Ok(_)) => return Ok(Txn::Abort(())),
                Some(Err(e)) => {
                    tracing::warn!(path = %path.display(), %root, error = %e,
                        "replacing undecodable blob row with a fetch");
                }
                None => {}
            }
            blobs.insert(key.as_slice(), row.as_slice())?;
            Ok(Txn::Commit(()))
        })
    }

    pub(super) fn fetch_roots(&self) -> Result<Vec<Cid>, StorageError> {
        Ok(self
            .rows()?
            .into_iter()
            .filter(|(_, row)| row.state == State::Fetching)
            .map(|(cid, _)| cid)
            .collect())
    }

    /// The blocks reachable from `roots` through stored (and verified) dag-pb nodes, roots
    /// included, whether stored or not.
    ///
    /// Each distinct block is visited once, however many links lead to it, so a DAG that links
    /// the same subtree over and over (a "DAG bomb") costs its distinct blocks, not its paths.
    pub(super) fn reachable(&self, roots: &[Cid]) -> Result<HashSet<Cid>, StorageError> {
        let mut seen: HashSet<Cid> = HashSet::new();
        let mut stack: Vec<Cid> = roots.to_vec();
        while let Some(cid) = stack.pop() {
            if !seen.insert(cid) || cid.codec() != mcc_blobs::DAG_PB {
                continue;
            }
            let node = self
                .read_block(&cid)
                .map_err(|e| io_error(&self.block_path(&cid), e))?;
            let Some(node) = node else { continue };
            match mcc_blobs::dag_pb::links(&node) {
                Ok(links) => stack.extend(links.into_iter().filter(|l| !seen.contains(l))),
                Err(e) => {
                    tracing::warn!(%cid, error = %e, "cannot decode dag-pb node");
                }
            }
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::blobs::tests::*;

    #[test]
    fn fetch_resumes_after_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leaves = [raw(b"l1"), raw(b"l2"), raw(b"l3")];
        let (root, blocks) = dag(&leaves);
        let store = open(dir.path());
        store.begin_fetch(&root).expect("begin");
        store.begin_fetch(&root).expect("idempotent");
        assert_eq!(store.partial_fetches(), vec![root]);
        for (cid, data) in &blocks[..3] {
            store.put(cid, data).expect("put");
        }
        let loose = raw(b"not part of the fetch");
        store.put(&loose.0, &loose.1).expect("put");
        assert!(store.info(&root).is_none());
        assert!(store.list().is_empty());
        drop(store);

        let store = open(dir.path());
        assert_eq!(store.partial_fetches(), vec![root]);
        for (cid, data) in &blocks[..3] {
            assert!(store.has(cid));
            assert_eq!(store.get(cid).expect("get").as_ref(), Some(data));
        }
        assert!(!store.has(&blocks[3].0));
        assert!(!store.has(&loose.0));
        assert!(store.info(&root).is_none());

        // Committing with a block missing fails and shows nothing.
        let cids: Vec<Cid> = blocks.iter().map(|(c, _)| *c).collect();
        assert!(store.commit(&root, 6, &cids).is_err());
        assert!(store.info(&root).is_none());
        assert_eq!(store.partial_fetches(), vec![root]);

        store.put(&blocks[3].0, &blocks[3].1).expect("put");
        let info = store.commit(&root, 6, &cids).expect("commit");
        assert_eq!(info.blocks, 4);
        assert!(store.partial_fetches().is_empty());
        assert_eq!(store.list(), vec![info.clone()]);
        store.begin_fetch(&root).expect("no-op on a complete blob");
        assert!(store.partial_fetches().is_empty());
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.info(&root), Some(info));
        assert_eq!(files(dir.path()), names(&cids));
    }
}
