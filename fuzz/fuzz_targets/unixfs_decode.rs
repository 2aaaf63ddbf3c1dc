//! One dag-pb/UnixFS block as a fetcher decodes it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcc_blobs::unixfs;

fuzz_target!(|data: &[u8]| {
    let Ok(node) = unixfs::decode(data) else {
        return;
    };
    let ranges = unixfs::child_ranges(&node);
    assert_eq!(ranges.len(), node.links.len());
    // A leaf holding its bytes inline (no links) has no children to cover its size, and its
    // node (which keeps no bytes) cannot re-encode them.
    if unixfs::is_inline_leaf(&node) {
        return;
    }
    assert_eq!(ranges.last().map_or(0, |r| r.end), node.filesize);
    // The canonical encoding of a decoded node decodes to the same node.
    let again = unixfs::decode(&unixfs::encode(&node));
    assert_eq!(again.ok(), Some(node));
});
