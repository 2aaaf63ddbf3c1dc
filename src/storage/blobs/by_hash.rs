//! Blocks looked up by multihash, as Bitswap peers ask for them: a block is stored under its
//! CIDv1 (raw or dag-pb), and a peer may want it under another CID with the same multihash
//! (a CIDv0, or another codec).

use bytes::Bytes;
use mcc_blobs::{BlockStore, Cid, DAG_PB, RAW};

use super::BlobStore;

/// A multihash, as in [`Cid`].
pub type Multihash = mcc_bitswap::Multihash;

impl BlobStore {
    /// The CID under which the block with `hash` is stored, if any.
    pub fn find_by_hash(&self, hash: &Multihash) -> Option<Cid> {
        [RAW, DAG_PB]
            .into_iter()
            .map(|codec| Cid::new_v1(codec, *hash))
            .find(|cid| self.has(cid))
    }
}

impl mcc_bitswap::BlockSource for BlobStore {
    fn has(&self, hash: &Multihash) -> bool {
        self.find_by_hash(hash).is_some()
    }

    /// Reads and verifies the block (a damaged file is absent, see [`BlockStore::get`]).
    fn get(&self, hash: &Multihash) -> Option<Bytes> {
        let cid = self.find_by_hash(hash)?;
        match BlockStore::get(self, &cid) {
            Ok(data) => data.map(Bytes::from),
            Err(e) => {
                tracing::debug!(%cid, "bitswap: reading a block failed: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cidv0_want_finds_the_block_stored_under_its_cidv1() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let node = b"\x0a\x02\x08\x01";
        let v1 = mcc_blobs::cid_of(DAG_PB, node);
        store.put(&v1, node).unwrap();
        let v0 = Cid::new_v0(*v1.hash()).unwrap();
        assert_eq!(store.find_by_hash(v0.hash()), Some(v1));
        let source: &dyn mcc_bitswap::BlockSource = &store;
        assert_eq!(source.get(v0.hash()).as_deref(), Some(&node[..]));
        let leaf = mcc_blobs::cid_of(RAW, b"leaf");
        assert!(!source.has(leaf.hash()));
    }
}
