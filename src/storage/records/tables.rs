//! The redb tables of the record store (see the layout in the [module docs](super)) and the
//! schema check at open.

use std::path::Path;

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use super::StorageError;

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
pub(super) const PROVIDERS: TableDefinition<ProviderKey, &[u8]> = TableDefinition::new("providers");
pub(super) const PROVIDER_KEYS: TableDefinition<&[u8], ()> = TableDefinition::new("provider_keys");
pub(super) const PROVIDED: TableDefinition<&[u8], ()> = TableDefinition::new("provided");
pub(super) const RECORD_SOURCES: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("record_sources");

/// (record key, provider `PeerId` bytes).
pub(super) type ProviderKey = (&'static [u8], &'static [u8]);

pub(super) const SCHEMA_KEY: &str = "schema_version";
pub(super) const SCHEMA_VERSION: u64 = 1;

pub(super) enum SchemaError {
    Redb(redb::Error),
    Storage(StorageError),
}

impl<E: Into<redb::Error>> From<E> for SchemaError {
    fn from(e: E) -> Self {
        Self::Redb(e.into())
    }
}

/// Creates all tables, checks the schema version, and returns the number of record rows and
/// whether it changed the file (a new file, or a table missing): a commit is needed only then.
pub(super) fn prepare_schema(
    txn: &WriteTransaction,
    path: &Path,
) -> Result<(u64, bool), SchemaError> {
    let tables_before = txn.list_tables()?.count();
    let has_tables = tables_before > 0;
    let mut meta = txn.open_table(META)?;
    let found = meta.get(SCHEMA_KEY)?.map(|v| v.value());
    match found {
        Some(SCHEMA_VERSION) => {}
        Some(found) => {
            return Err(SchemaError::Storage(StorageError::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            }));
        }
        // Tables but no version: this program did not write the file (it stamps the version
        // in the transaction that creates the tables).
        None if has_tables => {
            return Err(SchemaError::Storage(StorageError::Corrupt {
                path: path.to_path_buf(),
                reason: "redb file without a record-store schema version".into(),
            }));
        }
        None => {
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
        }
    }
    let records = txn.open_table(RECORDS)?;
    txn.open_table(RECORD_SOURCES)?;
    txn.open_table(PROVIDERS)?;
    txn.open_table(PROVIDER_KEYS)?;
    txn.open_table(PROVIDED)?;
    let rows = records.len()?;
    drop((meta, records));
    let changed = found.is_none() || txn.list_tables()?.count() != tables_before;
    Ok((rows, changed))
}
