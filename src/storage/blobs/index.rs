//! The index in `blobs.redb`: its tables and blob rows (see the [module docs](super)),
//! committing a blob (pin, fsync its blocks, then one durable transaction), and reading it.

use std::collections::BTreeSet;

use mcc_blobs::Cid;
use redb::{ReadableTable, TableDefinition};

use super::{BlobInfo, Inner, StorageError, Txn, now_ms, to_u64};

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const BLOBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blobs");
pub(super) const BLOB_BLOCKS: TableDefinition<BlobBlockKey, ()> =
    TableDefinition::new("blob_blocks");
pub(super) const BLOCK_REFS: TableDefinition<&[u8], u64> = TableDefinition::new("block_refs");

/// (root CID bytes, block CID bytes).
pub(super) type BlobBlockKey = (&'static [u8], &'static [u8]);

pub(super) const SCHEMA_KEY: &str = "schema_version";
const NEXT_SEQ_KEY: &str = "next_seq";
pub(super) const SCHEMA_VERSION: u64 = 1;

pub(super) const DB_FILE: &str = "blobs.redb";

const ROW_FORMAT_V1: u8 = 1;
const STATE_COMPLETE: u8 = 1;
const STATE_FETCHING: u8 = 2;
const ROW_LEN: usize = 2 + 4 * 8;

/// Whether a blob is complete or being fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Complete,
    Fetching,
}

/// A decoded row of the `blobs` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BlobRow {
    pub(super) state: State,
    pub(super) size: u64,
    pub(super) blocks: u64,
    pub(super) added_ms: u64,
    pub(super) seq: u64,
}

/// Why a `blobs` row could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(super) enum RowError {
    #[error("row has {0} bytes, expected {ROW_LEN}")]
    Length(usize),
    #[error("unknown row format {0}")]
    Format(u8),
    #[error("unknown blob state {0}")]
    State(u8),
}

impl Inner {
    /// Creates the tables and checks (or stamps) the schema version. An existing index is
    /// only read: no commit, so no fsync before the node can start.
    pub(super) fn prepare_schema(&self) -> Result<(), StorageError> {
        let path = self.db_path.as_path();
        self.write(|txn| {
            let tables_before = txn.list_tables()?.count();
            let has_tables = tables_before > 0;
            let mut meta = txn.open_table(META)?;
            let found = meta.get(SCHEMA_KEY)?.map(|v| v.value());
            match found {
                Some(SCHEMA_VERSION) => {}
                Some(found) => {
                    return Ok(Txn::Abort(Err(StorageError::UnsupportedVersion {
                        path: path.to_path_buf(),
                        found,
                        supported: SCHEMA_VERSION,
                    })));
                }
                // Tables but no version: this program did not write the file (it stamps the
                // version in the transaction that creates the tables).
                None if has_tables => {
                    return Ok(Txn::Abort(Err(StorageError::Corrupt {
                        path: path.to_path_buf(),
                        reason: "redb file without a blob-store schema version".into(),
                    })));
                }
                None => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
                }
            }
            txn.open_table(BLOBS)?;
            txn.open_table(BLOB_BLOCKS)?;
            txn.open_table(BLOCK_REFS)?;
            drop(meta);
            if found.is_none() || txn.list_tables()?.count() != tables_before {
                Ok(Txn::Commit(Ok(())))
            } else {
                Ok(Txn::Abort(Ok(())))
            }
        })?
    }

    pub(super) fn commit(
        &self,
        root: &Cid,
        size: u64,
        blocks: impl IntoIterator<Item = Cid>,
    ) -> Result<BlobInfo, StorageError> {
        let mut set: BTreeSet<Cid> = blocks.into_iter().collect();
        set.insert(*root);
        let set: Vec<Cid> = set.into_iter().collect();
        // Pinned from before the fsync until the index names them, so no concurrent delete
        // removes a block in between (one removed before the pin makes the fsync fail).
        self.pin(set.iter().copied());
        let result = self
            .sync_blocks(&set)
            .and_then(|()| self.index_blob(root, size, &set));
        self.unpin(&set);
        let row = result?;
        Ok(blob_info(root, &row))
    }

    /// Records `root` as complete with `blocks` (distinct), unless it already is.
    fn index_blob(&self, root: &Cid, size: u64, blocks: &[Cid]) -> Result<BlobRow, StorageError> {
        let key = root.to_bytes();
        let block_keys: Vec<Vec<u8>> = blocks.iter().map(Cid::to_bytes).collect();
        let added_ms = now_ms();
        let path = self.db_path.as_path();
        self.write(|txn| {
            let mut blobs = txn.open_table(BLOBS)?;
            let existing = blobs.get(key.as_slice())?.map(|v| decode_row(v.value()));
            match existing {
                Some(Ok(row)) if row.state == State::Complete => return Ok(Txn::Abort(row)),
                Some(Err(e)) => {
                    tracing::warn!(path = %path.display(), %root, error = %e,
                        "replacing undecodable blob row");
                }
                Some(Ok(_)) | None => {}
            }
            let mut blob_blocks = txn.open_table(BLOB_BLOCKS)?;
            let mut refs = txn.open_table(BLOCK_REFS)?;
            // Normally none: only an undecodable row can leave block links behind.
            unlink_blocks(&mut blob_blocks, &mut refs, &key)?;
            let mut meta = txn.open_table(META)?;
            let seq = meta.get(NEXT_SEQ_KEY)?.map_or(1, |v| v.value());
            meta.insert(NEXT_SEQ_KEY, seq.saturating_add(1))?;
            for block in &block_keys {
                blob_blocks.insert((key.as_slice(), block.as_slice()), ())?;
                let n = refs.get(block.as_slice())?.map_or(0, |v| v.value());
                refs.insert(block.as_slice(), n.saturating_add(1))?;
            }
            let row = BlobRow {
                state: State::Complete,
                size,
                blocks: to_u64(block_keys.len()),
                added_ms,
                seq,
            };
            blobs.insert(key.as_slice(), encode_row(&row).as_slice())?;
            Ok(Txn::Commit(row))
        })
    }

    pub(super) fn info(&self, root: &Cid) -> Option<BlobInfo> {
        let key = root.to_bytes();
        let found = self.read(|txn| {
            let blobs = txn.open_table(BLOBS)?;
            Ok(blobs.get(key.as_slice())?.map(|v| decode_row(v.value())))
        });
        match found {
            Ok(Some(Ok(row))) if row.state == State::Complete => Some(blob_info(root, &row)),
            Ok(Some(Ok(_)) | None) => None,
            Ok(Some(Err(e))) => {
                tracing::warn!(path = %self.db_path.display(), %root, error = %e,
                    "ignoring undecodable blob row");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading a blob failed");
                None
            }
        }
    }

    /// Every decodable blob row (undecodable ones are logged and skipped).
    pub(super) fn rows(&self) -> Result<Vec<(Cid, BlobRow)>, StorageError> {
        let path = self.db_path.as_path();
        self.read(|txn| {
            let blobs = txn.open_table(BLOBS)?;
            let mut out = Vec::new();
            for entry in blobs.range::<&[u8]>(..)? {
                let (key, row) = entry?;
                let cid = Cid::try_from(key.value());
                match (cid, decode_row(row.value())) {
                    (Ok(cid), Ok(row)) => out.push((cid, row)),
                    (Err(e), _) => {
                        tracing::warn!(path = %path.display(), error = %e,
                            "ignoring blob row with an invalid CID");
                    }
                    (Ok(cid), Err(e)) => {
                        tracing::warn!(path = %path.display(), %cid, error = %e,
                            "ignoring undecodable blob row");
                    }
                }
            }
            Ok(out)
        })
    }

    pub(super) fn list(&self) -> Vec<BlobInfo> {
        let mut rows = match self.rows() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "listing blobs failed");
                return Vec::new();
            }
        };
        rows.retain(|(_, row)| row.state == State::Complete);
        rows.sort_by_key(|(_, row)| std::cmp::Reverse(row.seq));
        rows.iter().map(|(cid, row)| blob_info(cid, row)).collect()
    }
}

/// Removes the `(root, *)` rows of `blob_blocks` and decrements the reference counts of those
/// blocks. Returns the blocks (CID bytes) no complete blob lists any more.
pub(super) fn unlink_blocks(
    blob_blocks: &mut redb::Table<'_, BlobBlockKey, ()>,
    refs: &mut redb::Table<'_, &'static [u8], u64>,
    root: &[u8],
) -> Result<Vec<Vec<u8>>, redb::Error> {
    let mut linked = Vec::new();
    for entry in blob_blocks.range((root, &[][..])..)? {
        let (k, _) = entry?;
        let (r, block) = k.value();
        if r != root {
            break;
        }
        linked.push(block.to_vec());
    }
    let mut freed = Vec::new();
    for block in linked {
        blob_blocks.remove((root, block.as_slice()))?;
        let n = refs.get(block.as_slice())?.map_or(0, |v| v.value());
        if n <= 1 {
            refs.remove(block.as_slice())?;
            freed.push(block);
        } else {
            refs.insert(block.as_slice(), n - 1)?;
        }
    }
    Ok(freed)
}

fn blob_info(root: &Cid, row: &BlobRow) -> BlobInfo {
    BlobInfo {
        cid: root.to_string(),
        size: row.size,
        complete: row.state == State::Complete,
        blocks: row.blocks,
        added_unix_ms: row.added_ms,
    }
}

pub(super) fn encode_row(row: &BlobRow) -> [u8; ROW_LEN] {
    let mut out = [0u8; ROW_LEN];
    out[0] = ROW_FORMAT_V1;
    out[1] = match row.state {
        State::Complete => STATE_COMPLETE,
        State::Fetching => STATE_FETCHING,
    };
    for (i, v) in [row.size, row.blocks, row.added_ms, row.seq]
        .into_iter()
        .enumerate()
    {
        out[2 + i * 8..10 + i * 8].copy_from_slice(&v.to_le_bytes());
    }
    out
}

pub(super) fn decode_row(bytes: &[u8]) -> Result<BlobRow, RowError> {
    let bytes: &[u8; ROW_LEN] = bytes
        .try_into()
        .map_err(|_| RowError::Length(bytes.len()))?;
    let [format, state, rest @ ..] = bytes;
    if *format != ROW_FORMAT_V1 {
        return Err(RowError::Format(*format));
    }
    let state = match *state {
        STATE_COMPLETE => State::Complete,
        STATE_FETCHING => State::Fetching,
        other => return Err(RowError::State(other)),
    };
    let mut fields = rest.chunks_exact(8).map(|c| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        u64::from_le_bytes(b)
    });
    let mut next = || fields.next().unwrap_or(0);
    Ok(BlobRow {
        state,
        size: next(),
        blocks: next(),
        added_ms: next(),
        seq: next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::blobs::tests::*;

    #[test]
    fn list_is_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let mut roots = Vec::new();
        for i in 0..4u8 {
            let leaf = raw(&[i; 3]);
            add(&store, std::slice::from_ref(&leaf), &leaf.0);
            roots.push(leaf.0.to_string());
        }
        let listed = |s: &BlobStore| s.list().into_iter().map(|i| i.cid).collect::<Vec<_>>();
        let mut newest_first = roots.clone();
        newest_first.reverse();
        assert_eq!(listed(&store), newest_first);
        let second: Cid = roots[1].parse().expect("cid");
        assert!(store.delete(&second).expect("delete"));
        newest_first.retain(|c| *c != roots[1]);
        assert_eq!(listed(&store), newest_first);
        drop(store);
        let store = open(dir.path());
        assert_eq!(listed(&store), newest_first);
        let leaf = raw(b"latest");
        add(&store, std::slice::from_ref(&leaf), &leaf.0);
        assert_eq!(listed(&store)[0], leaf.0.to_string());
    }

    #[test]
    fn open_rejects_foreign_and_newer_databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = Database::create(dir.path().join(DB_FILE)).expect("create");
            let txn = db.begin_write().expect("write");
            {
                let table: TableDefinition<u64, u64> = TableDefinition::new("other");
                txn.open_table(table)
                    .expect("table")
                    .insert(1, 2)
                    .expect("insert");
            }
            txn.commit().expect("commit");
        }
        assert!(matches!(
            BlobStore::open(dir.path()),
            Err(StorageError::Corrupt { .. })
        ));

        let dir = tempfile::tempdir().expect("tempdir");
        drop(open(dir.path()));
        {
            let db = Database::create(dir.path().join(DB_FILE)).expect("open");
            let txn = db.begin_write().expect("write");
            txn.open_table(META)
                .expect("meta")
                .insert(SCHEMA_KEY, 99)
                .expect("insert");
            txn.commit().expect("commit");
        }
        assert!(matches!(
            BlobStore::open(dir.path()),
            Err(StorageError::UnsupportedVersion { found: 99, .. })
        ));

        let dir = tempfile::tempdir().expect("tempdir");
        let first = open(dir.path());
        assert!(matches!(
            BlobStore::open(dir.path()),
            Err(StorageError::Open { .. })
        ));
        drop(first);
    }

    #[test]
    fn rows_decode() {
        let row = BlobRow {
            state: State::Fetching,
            size: u64::MAX,
            blocks: 7,
            added_ms: 1_700_000_000_000,
            seq: 3,
        };
        assert_eq!(decode_row(&encode_row(&row)).expect("decode"), row);
        assert!(matches!(decode_row(&[1, 1]), Err(RowError::Length(2))));
        let mut bad = encode_row(&row);
        bad[1] = 9;
        assert!(matches!(decode_row(&bad), Err(RowError::State(9))));
        bad[0] = 2;
        assert!(matches!(decode_row(&bad), Err(RowError::Format(2))));
    }
}
