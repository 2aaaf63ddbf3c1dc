//! Helpers for the tests of the blob store, and tests of the store as a whole.

pub(super) use std::collections::BTreeSet;
pub(super) use std::fs;
pub(super) use std::path::Path;
pub(super) use std::sync::Arc;

pub(super) use mcc_blobs::{BlockStore, Cid, DAG_PB, RAW, cid_of};
pub(super) use redb::Database;

pub(super) use super::blocks::BLOCKS_DIR;
pub(super) use super::{AddSession, BlobInfo, BlobStore};

/// Protobuf wire types.
pub(super) const WIRE_VARINT: u64 = 0;
pub(super) const WIRE_LEN: u64 = 2;

pub(super) fn open(dir: &Path) -> BlobStore {
    BlobStore::open(dir).expect("open")
}

pub(super) fn raw(data: &[u8]) -> (Cid, Vec<u8>) {
    (cid_of(RAW, data), data.to_vec())
}

pub(super) fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(super) fn field_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint((field << 3) | WIRE_LEN, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A dag-pb node linking `links` (with names and sizes, as UnixFS writes them).
pub(super) fn node(links: &[Cid]) -> (Cid, Vec<u8>) {
    let mut out = Vec::new();
    for l in links {
        let mut link = Vec::new();
        field_bytes(1, &l.to_bytes(), &mut link);
        field_bytes(2, b"", &mut link);
        varint((3 << 3) | WIRE_VARINT, &mut link);
        varint(1_048_576, &mut link);
        field_bytes(2, &link, &mut out);
    }
    // Data: a UnixFS File message.
    field_bytes(1, &[0x08, 0x02], &mut out);
    (cid_of(DAG_PB, &out), out)
}

/// A blob of `leaves` under a dag-pb root, as (root, all blocks).
pub(super) fn dag(leaves: &[(Cid, Vec<u8>)]) -> (Cid, Vec<(Cid, Vec<u8>)>) {
    let links: Vec<Cid> = leaves.iter().map(|(c, _)| *c).collect();
    let (root, data) = node(&links);
    let mut blocks = vec![(root, data)];
    blocks.extend(leaves.iter().cloned());
    (root, blocks)
}

pub(super) fn add(store: &BlobStore, blocks: &[(Cid, Vec<u8>)], root: &Cid) -> BlobInfo {
    let mut session = store.begin_add().expect("begin");
    for (cid, data) in blocks {
        session.put(cid, data).expect("put");
    }
    let size = blocks.iter().map(|(_, d)| d.len() as u64).sum();
    session.commit(root, size).expect("commit")
}

/// Names of all block files (and anything else) under `blocks/`.
pub(super) fn files(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for shard in fs::read_dir(dir.join(BLOCKS_DIR)).expect("read_dir") {
        let shard = shard.expect("entry");
        if shard.file_type().expect("type").is_dir() {
            for f in fs::read_dir(shard.path()).expect("read_dir") {
                out.insert(f.expect("entry").file_name().to_string_lossy().into_owned());
            }
        } else {
            out.insert(shard.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

pub(super) fn names(cids: &[Cid]) -> BTreeSet<String> {
    cids.iter().map(Cid::to_string).collect()
}

#[test]
fn types_are_thread_safe() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<BlobStore>();
    send_sync::<AddSession>();
}
