//! A whole DAG as a fetcher walks it: `(len (u16 BE) | block)*`, the first block being the root
//! (dag-pb). Blocks are found by their CID (dag-pb or raw), so links a mutation leaves intact
//! still resolve.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use mcc_blobs::{Cid, DAG_PB, RAW, cid_of, unixfs};

fuzz_target!(|data: &[u8]| {
    let mut blocks: HashMap<Cid, Vec<u8>> = HashMap::new();
    let mut root = None;
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (block, tail) = tail.split_at(len);
        rest = tail;
        let cid = cid_of(DAG_PB, block);
        root.get_or_insert(cid);
        blocks.insert(cid, block.to_vec());
        blocks.insert(cid_of(RAW, block), block.to_vec());
    }
    let Some(root) = root else {
        return;
    };
    let get = |cid: &Cid| Ok(blocks.get(cid).cloned());
    let Ok(shape) = unixfs::measure(&root, get) else {
        return;
    };
    let leaves = unixfs::leaves(&root, |cid| blocks.get(cid).cloned());
    if let Ok(leaves) = &leaves {
        // Empty leaves are counted by `measure` but not listed.
        assert!(leaves.len() as u64 <= shape.leaves);
        assert_eq!(leaves.iter().map(|(_, size)| size).sum::<u64>(), shape.size);
    }
    // A range in the middle, as a Range request reads it; bounded by the leaves measure allowed.
    let want = shape.size / 3..shape.size - shape.size / 3;
    let mut cursor = unixfs::Cursor::new(root, shape.size, want.clone());
    let mut got = 0u64;
    let mut steps = 0u64;
    while let Ok(Some(part)) = cursor.next_leaf(get) {
        got += (part.range.end - part.range.start) as u64;
        steps += 1;
        assert!(steps <= shape.leaves);
    }
    if leaves.is_ok() {
        assert_eq!(got, want.end - want.start);
    }
});
