//! Blobs on a node: add a file (IPFS-compatible CIDs), fetch one from every seeder at once,
//! read it back (whole or a byte range), delete it, and seed it in the DHT.
//!
//! [`Blobs`] is the handle (over the node's [`Network`]); [`Error`] its errors.
//!
//! Block bytes move between the disk store and libp2p streams (`/mcc/blobs/1.0.0`, crate
//! `mcc-blobs`) in their own tasks, never through the node's event loop.

mod bitswap;
mod error;
mod seeders;

use mcc_admission::Permission;
use std::ops::Range;
use std::sync::Arc;

use futures::Stream;
use libp2p::kad::RecordKey;
use mcc_blobs::{BlockStore, Cid, DAG_PB, RAW, transfer, unixfs};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use utoipa::ToSchema;

pub use self::error::{CidError, Error};
use crate::node::info::Provider;
use crate::node::network::Network;
pub use crate::storage::blobs::{BlobInfo, BlobStore};
pub use mcc_blobs::transfer::{Progress, SeederReport};

/// Seeders found during a fetch waiting to join it.
const JOIN_CAPACITY: usize = 16;

/// The DHT provider key of a blob: its root CID's multihash bytes (as IPFS does).
pub fn provider_key(cid: &Cid) -> RecordKey {
    RecordKey::new(&cid.hash().to_bytes())
}

/// Parses a CID string (400-worthy errors). A CIDv0 (`Qm...`) comes back as the CIDv1 of the
/// same block (blocks are stored and listed under CIDv1).
pub fn parse_cid(s: &str) -> Result<Cid, Error> {
    let cid = Cid::try_from(s).map_err(|source| Error::InvalidCid {
        cid: s.to_string(),
        source,
    })?;
    if cid.codec() != RAW && cid.codec() != DAG_PB {
        return Err(Error::UnsupportedCodec(s.to_string()));
    }
    Ok(unixfs::normalize(cid))
}

/// How a blob is laid out: its distinct blocks, its leaves in file order, its size.
pub struct Layout {
    /// Every distinct block, root first.
    pub blocks: Vec<Cid>,
    /// Leaves in file order (a leaf linked twice counts twice).
    pub leaves: u64,
    pub size: u64,
}

impl Layout {
    /// Measures the DAG under `root` in `store` ([`unixfs::measure`]: each distinct dag-pb node
    /// is read once, no leaf is); fails with [`Error::Refused`] for a DAG out of proportion
    /// (a "DAG bomb").
    pub fn read(store: &dyn BlockStore, root: &Cid) -> Result<Self, Error> {
        let shape = unixfs::measure(root, |c| store.get(c)).map_err(|e| dag_error(root, e))?;
        Ok(Self {
            blocks: shape.blocks,
            leaves: shape.leaves,
            size: shape.size,
        })
    }
}

/// The error for a DAG that cannot be walked.
fn dag_error(root: &Cid, e: unixfs::DecodeError) -> Error {
    match e {
        unixfs::DecodeError::Refused(reason) => Error::Refused {
            root: *root,
            reason,
        },
        unixfs::DecodeError::Store(e) => Error::Io(e),
        source => Error::Dag {
            root: *root,
            source: Box::new(source),
        },
    }
}

/// The wanted part of the next leaf under `cursor`, read from `store` and checked against the
/// size its parent gives; `None` at the end.
fn next_chunk(
    store: &BlobStore,
    cursor: &mut unixfs::Cursor,
) -> std::io::Result<Option<bytes::Bytes>> {
    let part = cursor
        .next_leaf(|c| store.get(c))
        .map_err(std::io::Error::other)?;
    let Some(part) = part else {
        return Ok(None);
    };
    let data = store
        .get(&part.cid)?
        .ok_or_else(|| std::io::Error::other(format!("block {} is missing", part.cid)))?;
    // A dag-pb leaf holds its bytes inline.
    let bytes = if part.cid.codec() == DAG_PB {
        let inline = unixfs::inline_range(&data).map_err(std::io::Error::other)?;
        bytes::Bytes::from(data).slice(inline)
    } else {
        bytes::Bytes::from(data)
    };
    if bytes.len() as u64 != part.size {
        return Err(std::io::Error::other(format!(
            "block {} holds {} bytes, its parent says {}",
            part.cid,
            bytes.len(),
            part.size
        )));
    }
    Ok(Some(bytes.slice(part.range)))
}

/// What a fetch did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FetchSummary {
    pub cid: String,
    pub size: u64,
    /// Already stored here: nothing was downloaded.
    pub local: bool,
    pub seeders: Vec<SeederSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SeederSummary {
    pub peer_id: String,
    pub blocks: u64,
    pub bytes: u64,
    /// Why this seeder was dropped from the download, if it was.
    pub dropped: Option<String>,
}

/// The blobs of a node: a cloneable handle over the node's [`Network`] and its blob store.
#[derive(Clone)]
pub struct Blobs {
    net: Network,
    store: Arc<BlobStore>,
    /// Who may seed (with `--trust-ca`).
    gates: mcc_admission::Gates,
    /// Seed blobs fetched from others too.
    keep: bool,
    /// Wants to Bitswap peers (IPFS nodes), if the node runs Bitswap.
    bitswap: Option<mcc_bitswap::Handle>,
}

impl Blobs {
    /// The blobs of a node on `net`, kept in `store`; `keep`: seed fetched blobs too.
    pub(crate) fn new(
        net: Network,
        store: Arc<BlobStore>,
        gates: mcc_admission::Gates,
        keep: bool,
    ) -> Self {
        Self {
            net,
            store,
            gates,
            keep,
            bitswap: None,
        }
    }

    /// Fetches also ask Bitswap peers through `handle`.
    pub(crate) fn with_bitswap(mut self, handle: mcc_bitswap::Handle) -> Self {
        self.bitswap = Some(handle);
        self
    }

    fn blob_store(&self) -> &Arc<BlobStore> {
        &self.store
    }

    /// The block store, for the blob server.
    pub(crate) fn store(&self) -> &Arc<BlobStore> {
        &self.store
    }

    /// Announces this node as a seeder of every blob stored here (with `blobs:seed`).
    pub(crate) async fn seed_stored(&self) -> Result<(), Error> {
        if self.net.may(Permission::BlobsSeed).is_err() {
            return Ok(());
        }
        for b in self.list() {
            if let Ok(cid) = parse_cid(&b.cid) {
                self.net.provide(provider_key(&cid)).await?;
            }
        }
        Ok(())
    }

    /// Blobs stored here (complete ones).
    pub fn list(&self) -> Vec<BlobInfo> {
        self.blob_store().list()
    }

    /// Adds a file from `reader`: cuts it into blocks, stores them, commits the blob and
    /// announces this node as a seeder.
    pub async fn add<R: AsyncRead + Unpin>(&self, mut reader: R) -> Result<BlobInfo, Error> {
        let store = Arc::clone(self.blob_store());
        let mut session = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || store.begin_add()).await??
        };
        let mut builder = unixfs::Builder::new();
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = reader.read(&mut buf).await.map_err(Error::Upload)?;
            if n == 0 {
                break;
            }
            let blocks = builder.push(&buf[..n]);
            if !blocks.is_empty() {
                session = tokio::task::spawn_blocking(move || {
                    for b in &blocks {
                        session.put(&b.cid, &b.data)?;
                    }
                    Ok::<_, crate::storage::StorageError>(session)
                })
                .await??;
            }
        }
        let (blocks, root, size) = builder.finish();
        let info = tokio::task::spawn_blocking(move || {
            for b in &blocks {
                session.put(&b.cid, &b.data)?;
            }
            session.commit(&root, size)
        })
        .await??;
        self.net.provide(provider_key(&root)).await?;
        tracing::info!(cid = %root, size, "blob added");
        Ok(info)
    }

    /// Makes sure the blob is stored here: downloads it from every seeder found in the DHT
    /// and from the Bitswap peers (IPFS nodes) that have its root (see
    /// [`bitswap::sort_seeders`]), in parallel, verifying each block; resumes from blocks
    /// already stored. A CIDv0 is fetched and stored as its CIDv1.
    pub async fn fetch(
        &self,
        cid: &Cid,
        progress: impl FnMut(&Progress) + Send,
    ) -> Result<FetchSummary, Error> {
        let cid = &unixfs::normalize(*cid);
        let store = Arc::clone(self.blob_store());
        if let Some(info) = store.info(cid) {
            return Ok(FetchSummary {
                cid: info.cid,
                size: info.size,
                local: true,
                seeders: Vec::new(),
            });
        }
        // The fetch starts with the first providers found; those the lookup finds later join
        // it as they come.
        let found = self.net.providers_stream(provider_key(cid)).await?;
        let finder = seeders::Finder {
            net: &self.net,
            bitswap: self.bitswap.as_ref(),
            gates: &self.gates,
            root: *cid,
        };
        let mut found = found;
        let (seeders, bitswap_seeders) = finder.first(&mut found).await;
        if seeders.is_empty() && bitswap_seeders.is_empty() {
            return Err(Error::NoSeeder(*cid));
        }
        // Recorded only now that there is something to fetch from, so a GET of an unknown CID
        // leaves nothing behind.
        store.begin_fetch(cid)?;
        let allow: transfer::AllowSeeder = {
            let gates = self.gates.clone();
            Arc::new(move |p| gates.allows(p, Permission::BlobsSeed))
        };
        // With Bitswap, IPFS peers found later can join too.
        let remote = self.bitswap.as_ref().map(|handle| transfer::RemoteSeeders {
            peers: bitswap_seeders,
            blocks: Arc::new(bitswap::Bitswap(handle.clone())),
        });
        let config = transfer::FetchConfig {
            allow: Some(allow),
            remote,
            ..transfer::FetchConfig::default()
        };
        let root = *cid;
        let (join, joining) = mpsc::channel(JOIN_CAPACITY);
        let fetching = transfer::fetch_streaming(
            config,
            self.net.control(),
            seeders,
            joining,
            root,
            Arc::clone(&store) as Arc<dyn BlockStore>,
            progress,
        );
        // The late providers are handed over until the lookup ends (or the fetch does: the
        // lookup is then left to finish on its own).
        let fetched = {
            tokio::pin!(fetching);
            let late = finder.join_late(found, join);
            tokio::pin!(late);
            let mut late_done = false;
            loop {
                tokio::select! {
                    fetched = &mut fetching => break fetched,
                    () = &mut late, if !late_done => late_done = true,
                }
            }
        };
        let reports = match fetched {
            Ok(reports) => reports,
            Err(e) => {
                let refused = matches!(e, transfer::FetchError::Refused(_));
                // A refused DAG goes entirely; a failed fetch that stored nothing (not even the
                // root) leaves no row behind. One that stored blocks keeps them, to resume.
                self.forget_fetch(&root, refused).await;
                return Err(match e {
                    transfer::FetchError::Refused(reason) => Error::Refused { root, reason },
                    source => Error::Fetch {
                        cid: root,
                        source: Box::new(source),
                    },
                });
            }
        };
        let committed = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || {
                let layout = Layout::read(store.as_ref(), &root)?;
                Ok::<_, Error>(store.commit(&root, layout.size, &layout.blocks)?)
            })
            .await?
        };
        let info = match committed {
            Ok(info) => info,
            Err(e) => {
                if matches!(e, Error::Refused { .. }) {
                    self.forget_fetch(&root, true).await;
                }
                return Err(e);
            }
        };
        if self.keep && self.net.may(Permission::BlobsSeed).is_ok() {
            self.net.provide(provider_key(cid)).await?;
        }
        tracing::info!(%cid, size = info.size, "blob fetched");
        Ok(FetchSummary {
            cid: info.cid,
            size: info.size,
            local: false,
            seeders: reports
                .into_iter()
                .map(|r| SeederSummary {
                    peer_id: r.peer.to_string(),
                    blocks: r.blocks,
                    bytes: r.bytes,
                    dropped: r.dropped,
                })
                .collect(),
        })
    }

    /// Removes the partial-fetch row of `root` (and the blocks only it uses) after a failed
    /// fetch: always when `refused`, otherwise only if not even the root block was stored.
    async fn forget_fetch(&self, root: &Cid, refused: bool) {
        let store = Arc::clone(self.blob_store());
        let root = *root;
        let removed = tokio::task::spawn_blocking(move || {
            if store.info(&root).is_some() || (!refused && store.has(&root)) {
                return Ok(false);
            }
            store.delete(&root)
        })
        .await;
        match removed {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(%root, error = %e, "cannot remove a failed fetch"),
            Err(e) => tracing::warn!(%root, error = %e, "cannot remove a failed fetch"),
        }
    }

    /// The bytes of a stored blob, or of `range` of it, as a stream of chunks.
    ///
    /// The DAG is measured first (a "DAG bomb" is refused with [`Error::Refused`]); the
    /// leaves are then found one at a time as the stream is read, holding only the dag-pb nodes
    /// on the path to the current leaf.
    pub async fn read(
        &self,
        cid: &Cid,
        range: Option<Range<u64>>,
    ) -> Result<
        (
            u64,
            impl Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
        ),
        Error,
    > {
        let store = Arc::clone(self.blob_store());
        if store.info(cid).is_none() {
            return Err(Error::NotFound(*cid));
        }
        let root = *cid;
        let layout = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || Layout::read(store.as_ref(), &root)).await??
        };
        let size = layout.size;
        let want = range.unwrap_or(0..size);
        let cursor = unixfs::Cursor::new(root, size, want);
        let stream = futures::stream::unfold(Some((store, cursor)), |state| async move {
            let (store, mut cursor) = state?;
            let step = tokio::task::spawn_blocking(move || {
                let item = next_chunk(store.as_ref(), &mut cursor);
                (item, store, cursor)
            })
            .await;
            match step {
                Ok((Ok(Some(chunk)), store, cursor)) => Some((Ok(chunk), Some((store, cursor)))),
                Ok((Ok(None), _, _)) => None,
                // An error ends the stream.
                Ok((Err(e), _, _)) => Some((Err(e), None)),
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            }
        });
        Ok((size, stream))
    }

    /// Deletes a blob (blocks no other blob uses go too) and stops seeding it.
    pub async fn delete(&self, cid: &Cid) -> Result<(), Error> {
        let store = Arc::clone(self.blob_store());
        let root = *cid;
        let deleted = tokio::task::spawn_blocking(move || store.delete(&root)).await??;
        if !deleted {
            return Err(Error::NotFound(*cid));
        }
        Ok(self.net.stop_providing(provider_key(cid)).await?)
    }

    /// Seeders of a blob, best first.
    pub async fn providers(&self, cid: &Cid) -> Result<Vec<Provider>, Error> {
        let local = self.blob_store().info(cid).is_some();
        Ok(self.net.ranked_providers(provider_key(cid), local).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcc_blobs::{CHUNK_SIZE, MAX_LINKS, cid_of};

    /// Stores the review's "DAG bomb" in `store` and commits it as complete (as a node before
    /// the fix did after fetching it). Returns the root.
    fn commit_bomb(store: &BlobStore, depth: u32) -> Cid {
        let mut child = cid_of(RAW, b"x");
        store.put(&child, b"x").unwrap();
        let mut blocks = vec![child];
        let (mut size, mut tsize) = (1u64, 1u64);
        for _ in 0..depth {
            let data = unixfs::encode(&unixfs::Node {
                links: vec![unixfs::Link { cid: child, tsize }; MAX_LINKS],
                filesize: size * MAX_LINKS as u64,
                blocksizes: vec![size; MAX_LINKS],
            });
            tsize = data.len() as u64 + tsize * MAX_LINKS as u64;
            size *= MAX_LINKS as u64;
            child = cid_of(DAG_PB, &data);
            store.put(&child, &data).unwrap();
            blocks.push(child);
        }
        store.commit(&child, size, &blocks).unwrap();
        child
    }

    #[test]
    fn a_stored_bomb_is_refused_without_walking_its_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        for depth in [3, 4] {
            let root = commit_bomb(&store, depth);
            let started = std::time::Instant::now();
            match Layout::read(&store, &root) {
                Err(Error::Refused { reason, .. }) => {
                    assert!(reason.to_string().contains("leaves"), "{reason}")
                }
                Err(e) => panic!("depth {depth}: {e}"),
                Ok(layout) => panic!("depth {depth}: accepted {} leaves", layout.leaves),
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
        let refused = Error::Refused {
            root: commit_bomb(&store, 3),
            reason: unixfs::Refusal::TooManyLeaves { leaves: 1 },
        };
        assert!(
            refused.to_string().starts_with("blob DAG refused: "),
            "{refused}"
        );
    }

    #[test]
    fn a_file_of_zeros_is_read_lazily_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        // 200 MiB of zeros and a tail: the zero leaf repeats, and so does the node above it.
        let zero = vec![0u8; CHUNK_SIZE];
        let mut builder = unixfs::Builder::new();
        let mut session = store.begin_add().unwrap();
        for _ in 0..200 {
            for b in builder.push(&zero) {
                session.put(&b.cid, &b.data).unwrap();
            }
        }
        for b in builder.push(b"tail") {
            session.put(&b.cid, &b.data).unwrap();
        }
        let (rest, root, size) = builder.finish();
        for b in &rest {
            session.put(&b.cid, &b.data).unwrap();
        }
        let info = session.commit(&root, size).unwrap();
        assert_eq!(info.blocks, 5, "root, two nodes, zero leaf, tail leaf");

        let layout = Layout::read(&store, &root).unwrap();
        assert_eq!((layout.size, layout.leaves), (size, 201));
        assert_eq!(layout.blocks.len(), 5);

        // The whole file, a leaf at a time.
        let mut cursor = unixfs::Cursor::new(root, size, 0..size);
        let (mut total, mut chunks) = (0u64, 0);
        let mut last = bytes::Bytes::new();
        while let Some(chunk) = next_chunk(&store, &mut cursor).unwrap() {
            total += chunk.len() as u64;
            chunks += 1;
            last = chunk;
        }
        assert_eq!((total, chunks), (size, 201));
        assert_eq!(last.as_ref(), b"tail");
        // A range across the last zero leaf and the tail.
        let mut cursor = unixfs::Cursor::new(root, size, size - 6..size);
        let mut got = Vec::new();
        while let Some(chunk) = next_chunk(&store, &mut cursor).unwrap() {
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, b"\0\0tail");
    }

    #[test]
    fn a_leaf_shorter_than_its_parent_says_ends_the_stream_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let leaf = cid_of(RAW, b"abc");
        store.put(&leaf, b"abc").unwrap();
        let data = unixfs::encode(&unixfs::Node {
            links: vec![
                unixfs::Link {
                    cid: leaf,
                    tsize: 3
                };
                2
            ],
            filesize: 8,
            blocksizes: vec![4, 4],
        });
        let root = cid_of(DAG_PB, &data);
        store.put(&root, &data).unwrap();
        let mut cursor = unixfs::Cursor::new(root, 8, 0..8);
        let e = next_chunk(&store, &mut cursor).unwrap_err();
        assert!(e.to_string().contains("holds 3 bytes"), "{e}");
    }
}
