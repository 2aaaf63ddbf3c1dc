//! Any dag-pb node as the blob store reads it to find the blocks a partial fetch owns: the
//! lenient link reader, checked against the strict UnixFS decoder where both accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcc_blobs::{dag_pb, unixfs};

fuzz_target!(|data: &[u8]| {
    let links = dag_pb::links(data);
    // Every node the strict decoder accepts, the lenient reader reads, with the same links.
    if let Ok(node) = unixfs::decode(data) {
        let strict: Vec<_> = node.links.iter().map(|l| l.cid).collect();
        assert_eq!(links.ok(), Some(strict));
    }
});
