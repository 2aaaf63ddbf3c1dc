//! Blobs on a node: add a file (IPFS-compatible CIDs), fetch one from every seeder at once,
//! read it back (whole or a byte range), delete it, and seed it in the DHT.
//!
//! Block bytes move between the disk store and libp2p streams (`/mcc/blobs/1.0.0`, crate
//! `mcc-blobs`) in their own tasks, never through the node's event loop.

use mcc_admission::Permission;
use std::ops::Range;
use std::sync::Arc;

use futures::Stream;
use libp2p::kad::RecordKey;
use mcc_blobs::{BlockStore, Cid, DAG_PB, RAW, transfer, unixfs};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use utoipa::ToSchema;

use crate::node::{Command, Error, Node};
use crate::services::Provider;
pub use crate::storage::blobs::{BlobInfo, BlobStore};
pub use mcc_blobs::transfer::{Progress, SeederReport};

/// The DHT provider key of a blob: its root CID's multihash bytes (as IPFS does).
pub fn provider_key(cid: &Cid) -> RecordKey {
    RecordKey::new(&cid.hash().to_bytes())
}

/// Parses a CID string (400-worthy errors).
pub fn parse_cid(s: &str) -> Result<Cid, Error> {
    let cid = Cid::try_from(s).map_err(|e| Error::InvalidCid(format!("{s:?}: {e}")))?;
    if cid.codec() != RAW && cid.codec() != DAG_PB {
        return Err(Error::InvalidCid(format!("{s}: not a raw or dag-pb CID")));
    }
    Ok(cid)
}

/// How a blob is laid out: every block, the leaves in file order with their sizes, the size.
pub struct Layout {
    pub blocks: Vec<Cid>,
    pub leaves: Vec<(Cid, u64)>,
    pub size: u64,
}

impl Layout {
    /// Reads the internal nodes of the DAG under `root` from `store`.
    pub fn read(store: &dyn BlockStore, root: &Cid) -> Result<Self, Error> {
        let missing = |c: &Cid| Error::Blob(format!("block {c} is missing"));
        if root.codec() == RAW {
            let data = store
                .get(root)
                .map_err(io_err)?
                .ok_or_else(|| missing(root))?;
            return Ok(Self {
                blocks: vec![*root],
                leaves: vec![(*root, data.len() as u64)],
                size: data.len() as u64,
            });
        }
        enum Item {
            Node(Cid),
            Leaf(Cid, u64),
        }
        let mut blocks = Vec::new();
        let mut leaves = Vec::new();
        let mut size = 0;
        // Depth first, children pushed in reverse: leaves come out in file order.
        let mut stack = vec![Item::Node(*root)];
        while let Some(item) = stack.pop() {
            match item {
                Item::Leaf(cid, len) => {
                    blocks.push(cid);
                    leaves.push((cid, len));
                }
                Item::Node(cid) => {
                    blocks.push(cid);
                    let data = store
                        .get(&cid)
                        .map_err(io_err)?
                        .ok_or_else(|| missing(&cid))?;
                    let node =
                        unixfs::decode(&data).map_err(|e| Error::Blob(format!("{cid}: {e}")))?;
                    if cid == *root {
                        size = node.filesize;
                    }
                    for (link, len) in node.links.iter().zip(&node.blocksizes).rev() {
                        stack.push(if link.cid.codec() == RAW {
                            Item::Leaf(link.cid, *len)
                        } else {
                            Item::Node(link.cid)
                        });
                    }
                }
            }
        }
        Ok(Self {
            blocks,
            leaves,
            size,
        })
    }
}

fn io_err(e: std::io::Error) -> Error {
    Error::Blob(format!("blob store: {e}"))
}

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Blob(format!("blob store: {e}"))
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

impl Node {
    fn blob_store(&self) -> &Arc<BlobStore> {
        &self.inner.blobs
    }

    /// Blobs stored here (complete ones).
    pub fn blobs(&self) -> Vec<BlobInfo> {
        self.blob_store().list()
    }

    /// Adds a file from `reader`: cuts it into blocks, stores them, commits the blob and
    /// announces this node as a seeder.
    pub async fn add_blob<R: AsyncRead + Unpin>(&self, mut reader: R) -> Result<BlobInfo, Error> {
        let store = Arc::clone(self.blob_store());
        let mut session = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || store.begin_add())
                .await
                .map_err(store_err)?
                .map_err(store_err)?
        };
        let mut builder = unixfs::Builder::new();
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(|e| Error::Blob(format!("reading the upload: {e}")))?;
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
                .await
                .map_err(store_err)?
                .map_err(store_err)?;
            }
        }
        let (blocks, root, size) = builder.finish();
        let info = tokio::task::spawn_blocking(move || {
            for b in &blocks {
                session.put(&b.cid, &b.data)?;
            }
            session.commit(&root, size)
        })
        .await
        .map_err(store_err)?
        .map_err(store_err)?;
        self.send(Command::Provide {
            key: provider_key(&root),
        })
        .await?;
        tracing::info!(cid = %root, size, "blob added");
        Ok(info)
    }

    /// Makes sure the blob is stored here: downloads it from every seeder found in the DHT,
    /// in parallel, verifying each block; resumes from blocks already stored.
    pub async fn fetch_blob(
        &self,
        cid: &Cid,
        progress: impl FnMut(&Progress) + Send,
    ) -> Result<FetchSummary, Error> {
        let store = Arc::clone(self.blob_store());
        if let Some(info) = store.info(cid) {
            return Ok(FetchSummary {
                cid: info.cid,
                size: info.size,
                local: true,
                seeders: Vec::new(),
            });
        }
        store.begin_fetch(cid).map_err(store_err)?;
        let me = self.peer_id();
        let gates = &self.inner.gates;
        let seeders: Vec<_> = self
            .request(|reply| Command::GetProviders {
                key: provider_key(cid),
                reply,
            })
            .await?
            .into_iter()
            .filter(|p| *p != me)
            // With --trust-ca: not from peers whose certificate lacks blobs:seed.
            .filter(|p| !gates.is_admitted(p) || gates.allows(p, Permission::BlobsSeed))
            .collect();
        if seeders.is_empty() {
            return Err(Error::NoProvider(cid.to_string()));
        }
        let reports = transfer::fetch(
            self.inner.services.control.clone(),
            seeders,
            *cid,
            Arc::clone(&store) as Arc<dyn BlockStore>,
            progress,
        )
        .await
        .map_err(|e| Error::Blob(format!("fetching {cid}: {e}")))?;
        let root = *cid;
        let info = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || {
                let layout = Layout::read(store.as_ref(), &root)?;
                store
                    .commit(&root, layout.size, &layout.blocks)
                    .map_err(store_err)
            })
            .await
            .map_err(store_err)??
        };
        if self.inner.keep_blobs && self.may(Permission::BlobsSeed).is_ok() {
            self.send(Command::Provide {
                key: provider_key(cid),
            })
            .await?;
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

    /// The bytes of a stored blob, or of `range` of it, as a stream of chunks.
    pub async fn read_blob(
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
            return Err(Error::NotFound(cid.to_string()));
        }
        let root = *cid;
        let layout = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || Layout::read(store.as_ref(), &root))
                .await
                .map_err(store_err)??
        };
        let size = layout.size;
        let want = range.unwrap_or(0..size);
        // Leaves overlapping the range, with the part of each to send.
        let mut parts = Vec::new();
        let mut offset = 0u64;
        for (leaf, len) in layout.leaves {
            let span = offset..offset + len;
            offset += len;
            if span.end <= want.start || span.start >= want.end {
                continue;
            }
            let from = want.start.max(span.start) - span.start;
            let to = want.end.min(span.end) - span.start;
            parts.push((leaf, from as usize..to as usize));
        }
        let stream = futures::stream::unfold(
            (store, parts.into_iter()),
            |(store, mut parts)| async move {
                let (leaf, r) = parts.next()?;
                let s = Arc::clone(&store);
                let data = tokio::task::spawn_blocking(move || s.get(&leaf)).await;
                let item = match data {
                    Ok(Ok(Some(d))) if r.end <= d.len() => Ok(bytes::Bytes::from(d).slice(r)),
                    Ok(Ok(_)) => Err(std::io::Error::other(format!("block {leaf} is missing"))),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(std::io::Error::other(e)),
                };
                Some((item, (store, parts)))
            },
        );
        Ok((size, stream))
    }

    /// Deletes a blob (blocks no other blob uses go too) and stops seeding it.
    pub async fn delete_blob(&self, cid: &Cid) -> Result<(), Error> {
        let store = Arc::clone(self.blob_store());
        let root = *cid;
        let deleted = tokio::task::spawn_blocking(move || store.delete(&root))
            .await
            .map_err(store_err)?
            .map_err(store_err)?;
        if !deleted {
            return Err(Error::NotFound(cid.to_string()));
        }
        self.send(Command::StopProviding {
            key: provider_key(cid),
        })
        .await
    }

    /// Seeders of a blob, best first.
    pub async fn blob_providers(&self, cid: &Cid) -> Result<Vec<Provider>, Error> {
        let local = self.blob_store().info(cid).is_some();
        self.providers_of(provider_key(cid), local).await
    }
}
