//! End-to-end tests of `/mcc/blobs/1.0.0`: seeders running `transfer::serve` over in-memory
//! block stores, a fetcher running `transfer::fetch`, on swarms with only
//! `mcc_streams::Behaviour` (memory transport, and TCP + noise + yamux for the throughput
//! test).

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use libp2p::{PeerId, Swarm, swarm::SwarmEvent};
use libp2p_swarm_test::SwarmExt as _;
use mcc_blobs::{
    BlockStore, CHUNK_SIZE, Cid, MAX_BLOCK_SIZE, RAW, cid_of,
    transfer::{
        self, FetchConfig, FetchError, PROTOCOL_NAME, Progress, SeederReport, ServeError,
        ServeStats,
    },
    unixfs::{self, Block},
    verify,
};
use mcc_streams::Control;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::compat::FuturesAsyncReadCompatExt as _;

/// Fails the test if `future` takes longer than `secs` seconds.
async fn within<F: Future>(secs: u64, future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), future)
        .await
        .expect("test step timed out")
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A block store in memory. Blocks in `corrupt` are returned with their first byte flipped.
/// Unless `trusting`, `put` checks that the block matches its CID.
#[derive(Default)]
struct MemStore {
    blocks: Mutex<HashMap<Cid, Vec<u8>>>,
    corrupt: Mutex<HashSet<Cid>>,
    puts: AtomicU64,
    trusting: bool,
}

impl MemStore {
    fn with(blocks: &[Block]) -> Arc<Self> {
        let store = Arc::new(Self::default());
        for block in blocks {
            store.insert(block);
        }
        store
    }

    fn insert(&self, block: &Block) {
        self.blocks
            .lock()
            .unwrap()
            .insert(block.cid, block.data.clone());
    }

    fn corrupt_all(&self) {
        let cids: Vec<Cid> = self.blocks.lock().unwrap().keys().copied().collect();
        self.corrupt.lock().unwrap().extend(cids);
    }

    fn len(&self) -> usize {
        self.blocks.lock().unwrap().len()
    }

    /// Asserts that the store holds exactly `blocks`, each matching its CID.
    fn assert_holds(&self, blocks: &[Block]) {
        let stored = self.blocks.lock().unwrap();
        let expected: HashSet<Cid> = blocks.iter().map(|b| b.cid).collect();
        assert_eq!(stored.len(), expected.len(), "number of stored blocks");
        for block in blocks {
            let data = stored.get(&block.cid).expect("block missing");
            assert!(verify(&block.cid, data), "stored block fails verify");
            assert_eq!(data, &block.data);
        }
    }
}

impl BlockStore for MemStore {
    fn has(&self, cid: &Cid) -> bool {
        self.blocks.lock().unwrap().contains_key(cid)
    }

    fn get(&self, cid: &Cid) -> io::Result<Option<Vec<u8>>> {
        let mut data = self.blocks.lock().unwrap().get(cid).cloned();
        if let Some(data) = &mut data
            && self.corrupt.lock().unwrap().contains(cid)
        {
            match data.first_mut() {
                Some(byte) => *byte ^= 0xff,
                None => data.push(0),
            }
        }
        Ok(data)
    }

    fn put(&self, cid: &Cid, data: &[u8]) -> io::Result<()> {
        assert!(self.trusting || verify(cid, data), "put of a bad block");
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.blocks.lock().unwrap().insert(*cid, data.to_vec());
        Ok(())
    }
}

/// A fetcher connected to `n` seeders, all driven in background tasks.
struct Net {
    fetcher: Control,
    seeders: Vec<(PeerId, Control)>,
}

impl Net {
    fn peers(&self) -> Vec<PeerId> {
        self.seeders.iter().map(|(peer, _)| *peer).collect()
    }

    /// Runs `serve` on seeder `i` over `store`.
    fn seed(&self, i: usize, store: Arc<MemStore>) -> ServeStats {
        let stats = ServeStats::default();
        tokio::spawn(transfer::serve(
            self.seeders[i].1.clone(),
            store,
            stats.clone(),
        ));
        stats
    }
}

fn new_behaviour(_: libp2p::identity::Keypair) -> mcc_streams::Behaviour {
    mcc_streams::Behaviour::default()
}

/// Swarms on the memory transport (plaintext, yamux).
async fn memory_net(n: usize) -> Net {
    let mut fetcher = Swarm::new_ephemeral_tokio(new_behaviour);
    let mut seeders = Vec::new();
    for _ in 0..n {
        let mut seeder = Swarm::new_ephemeral_tokio(new_behaviour);
        seeder.listen().with_memory_addr_external().await;
        fetcher.connect(&mut seeder).await;
        seeders.push(seeder);
    }
    finish(fetcher, seeders)
}

/// Swarms on TCP over loopback with noise and yamux, as mcc runs them.
async fn tcp_net(n: usize) -> Net {
    fn tcp_swarm() -> Swarm<mcc_streams::Behaviour> {
        libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default().nodelay(true),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .expect("tcp transport")
            .with_behaviour(|_| mcc_streams::Behaviour::default())
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build()
    }
    let mut fetcher = tcp_swarm();
    let mut seeders = Vec::new();
    for _ in 0..n {
        let mut seeder = tcp_swarm();
        seeder
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let addr = seeder
            .wait(|event| match event {
                SwarmEvent::NewListenAddr { address, .. } => Some(address),
                _ => None,
            })
            .await;
        seeder.add_external_address(addr);
        fetcher.connect(&mut seeder).await;
        seeders.push(seeder);
    }
    finish(fetcher, seeders)
}

fn finish(
    fetcher: Swarm<mcc_streams::Behaviour>,
    seeders: Vec<Swarm<mcc_streams::Behaviour>>,
) -> Net {
    let net = Net {
        fetcher: fetcher.behaviour().control(),
        seeders: seeders
            .iter()
            .map(|s| (*s.local_peer_id(), s.behaviour().control()))
            .collect(),
    };
    tokio::spawn(fetcher.loop_on_next());
    for seeder in seeders {
        tokio::spawn(seeder.loop_on_next());
    }
    net
}

/// Records every progress report.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Progress>>>);

impl Recorder {
    fn callback(&self) -> impl FnMut(&Progress) + Send + 'static {
        let reports = self.0.clone();
        move |p: &Progress| reports.lock().unwrap().push(p.clone())
    }

    fn last(&self) -> Progress {
        self.0.lock().unwrap().last().cloned().expect("no progress")
    }
}

/// Fetches `root` from all seeders of `net` into `store`, within 60 s.
async fn fetch_all(
    net: &Net,
    root: Cid,
    store: Arc<MemStore>,
    progress: &Recorder,
) -> Result<Vec<SeederReport>, FetchError> {
    fetch_all_with(FetchConfig::default(), net, root, store, progress).await
}

/// Without asking two seeders for one block at the tail: each block is requested once.
fn exact() -> FetchConfig {
    FetchConfig {
        steal: false,
        ..FetchConfig::default()
    }
}

/// [`fetch_all`] with `config`.
async fn fetch_all_with(
    config: FetchConfig,
    net: &Net,
    root: Cid,
    store: Arc<MemStore>,
    progress: &Recorder,
) -> Result<Vec<SeederReport>, FetchError> {
    within(
        60,
        transfer::fetch_with(
            config,
            net.fetcher.clone(),
            net.peers(),
            root,
            store,
            progress.callback(),
        ),
    )
    .await
}

/// Short timeouts, for tests of failing seeders.
fn impatient() -> FetchConfig {
    FetchConfig {
        request_timeout: Duration::from_secs(1),
        open_timeout: Duration::from_secs(5),
        ..FetchConfig::default()
    }
}

/// The bytes of all blocks.
fn total_bytes(blocks: &[Block]) -> u64 {
    blocks.iter().map(|b| b.data.len() as u64).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_seeder_small_dag() {
    let (blocks, root, size) = unixfs::build(&data(5 * CHUNK_SIZE + 1, 1));
    assert_eq!(size, 5 * CHUNK_SIZE as u64 + 1);
    assert_eq!(blocks.len(), 7);
    let net = memory_net(1).await;
    let stats = net.seed(0, MemStore::with(&blocks));
    let store = Arc::new(MemStore::default());
    let progress = Recorder::default();

    // The fetch future is Send + 'static: it can run in its own task.
    let fetch = tokio::spawn(transfer::fetch(
        net.fetcher.clone(),
        net.peers(),
        root,
        store.clone(),
        progress.callback(),
    ));
    let reports = within(60, fetch).await.unwrap().expect("fetch");

    store.assert_holds(&blocks);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].peer, net.seeders[0].0);
    assert_eq!(reports[0].blocks, 7);
    assert_eq!(reports[0].bytes, total_bytes(&blocks));
    assert!(reports[0].dropped.is_none());
    assert_eq!(stats.blocks_served(), 7);
    assert_eq!(stats.bytes_served(), total_bytes(&blocks));
    let last = progress.last();
    assert_eq!(last.blocks_done, 7);
    assert_eq!(last.bytes_done, total_bytes(&blocks));
    assert_eq!(last.total_bytes, Some(total_bytes(&blocks)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_raw_block() {
    let (blocks, root, _) = unixfs::build(b"hello");
    assert_eq!(blocks.len(), 1);
    assert_eq!(root.codec(), RAW);
    let net = memory_net(1).await;
    net.seed(0, MemStore::with(&blocks));
    let store = Arc::new(MemStore::default());
    let progress = Recorder::default();
    let reports = fetch_all(&net, root, store.clone(), &progress)
        .await
        .expect("fetch");
    store.assert_holds(&blocks);
    assert_eq!(reports[0].blocks, 1);
    assert_eq!(progress.last().total_bytes, Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_seeders_share_the_work() {
    let (blocks, root, _) = unixfs::build(&data(32 * CHUNK_SIZE, 2));
    let net = memory_net(3).await;
    let source = MemStore::with(&blocks);
    let stats: Vec<ServeStats> = (0..3).map(|i| net.seed(i, source.clone())).collect();
    let store = Arc::new(MemStore::default());

    let reports = fetch_all(&net, root, store.clone(), &Recorder::default())
        .await
        .expect("fetch");

    store.assert_holds(&blocks);
    assert_eq!(reports.len(), 3);
    for (report, stats) in reports.iter().zip(&stats) {
        assert!(report.blocks > 0, "{report:?} served nothing");
        assert!(report.dropped.is_none(), "{report:?}");
        // At the tail a block may be asked of two seeders: the second copy is dropped.
        assert!(report.blocks <= stats.blocks_served(), "{report:?}");
    }
    let fetched: u64 = reports.iter().map(|r| r.blocks).sum();
    assert_eq!(fetched, blocks.len() as u64);
    // Every block is stored once, duplicates included.
    assert_eq!(store.puts.load(Ordering::Relaxed), blocks.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_seeder_is_dropped() {
    let (blocks, root, _) = unixfs::build(&data(24 * CHUNK_SIZE + 7, 3));
    let net = memory_net(3).await;
    let good = MemStore::with(&blocks);
    let bad = MemStore::with(&blocks);
    bad.corrupt_all();
    net.seed(0, good.clone());
    net.seed(1, bad);
    net.seed(2, good);
    let store = Arc::new(MemStore::default());

    let reports = fetch_all(&net, root, store.clone(), &Recorder::default())
        .await
        .expect("fetch");

    store.assert_holds(&blocks);
    let why = reports[1].dropped.as_deref().expect("corrupt seeder kept");
    assert!(why.contains("does not match its CID"), "{why}");
    assert_eq!(reports[1].blocks, 0);
    assert!(reports[0].dropped.is_none() && reports[2].dropped.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_corrupt_seeders_fail() {
    let (blocks, root, _) = unixfs::build(&data(3 * CHUNK_SIZE, 4));
    let net = memory_net(2).await;
    for i in 0..2 {
        let bad = MemStore::with(&blocks);
        bad.corrupt_all();
        net.seed(i, bad);
    }
    let store = Arc::new(MemStore::default());
    match fetch_all(&net, root, store.clone(), &Recorder::default()).await {
        Err(FetchError::AllSeedersFailed { missing, last }) => {
            assert_eq!(missing, 1, "only the root is known");
            assert!(last.contains("does not match its CID"), "{last}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(store.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_seeders_cover_the_dag() {
    let (blocks, root, _) = unixfs::build(&data(12 * CHUNK_SIZE, 5));
    let net = memory_net(3).await;
    // Seeder 0: the root and the even leaves; seeder 1: the odd leaves; seeder 2: nothing.
    let even = Arc::new(MemStore::default());
    let odd = Arc::new(MemStore::default());
    for (i, block) in blocks.iter().enumerate() {
        if block.cid == root || i % 2 == 0 {
            even.insert(block);
        } else {
            odd.insert(block);
        }
    }
    let stats = [
        net.seed(0, even),
        net.seed(1, odd),
        net.seed(2, Arc::new(MemStore::default())),
    ];
    let store = Arc::new(MemStore::default());

    let reports = fetch_all(&net, root, store.clone(), &Recorder::default())
        .await
        .expect("fetch");

    store.assert_holds(&blocks);
    assert!(reports.iter().all(|r| r.dropped.is_none()), "{reports:?}");
    assert_eq!(reports[2].blocks, 0);
    assert_eq!(reports[0].blocks + reports[1].blocks, blocks.len() as u64);
    assert!(stats[2].not_found() > 0 || stats[0].not_found() + stats[1].not_found() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_block_fails() {
    let (blocks, root, _) = unixfs::build(&data(4 * CHUNK_SIZE, 6));
    let missing = blocks[2].cid;
    let net = memory_net(2).await;
    for i in 0..2 {
        let partial = MemStore::with(&blocks);
        partial.blocks.lock().unwrap().remove(&missing);
        net.seed(i, partial);
    }
    let store = Arc::new(MemStore::default());
    match fetch_all(&net, root, store.clone(), &Recorder::default()).await {
        Err(FetchError::AllSeedersFailed { missing: n, last }) => {
            assert_eq!(n, 1);
            assert!(last.contains(&missing.to_string()), "{last}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(store.len(), blocks.len() - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_seeders() {
    let (blocks, root, _) = unixfs::build(&data(2 * CHUNK_SIZE, 7));
    let net = memory_net(0).await;
    let store = Arc::new(MemStore::default());
    let result = within(
        10,
        transfer::fetch(net.fetcher.clone(), vec![], root, store.clone(), |_| {}),
    )
    .await;
    assert!(matches!(result, Err(FetchError::NoSeeders)), "{result:?}");

    // Nothing missing: no seeder needed.
    for block in &blocks {
        store.insert(block);
    }
    let result = within(
        10,
        transfer::fetch(net.fetcher.clone(), vec![], root, store, |_| {}),
    )
    .await;
    assert!(matches!(result, Ok(ref r) if r.is_empty()), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsupported_roots_are_refused_at_once() {
    let net = memory_net(1).await;
    let data = b"hello";
    let identity = Cid::new_v1(
        RAW,
        cid::multihash::Multihash::<64>::wrap(0x00, data).unwrap(),
    );
    let cbor = Cid::new_v1(0x71, *cid_of(RAW, data).hash());
    // (A CIDv0 root is fetched as its CIDv1: see `unixfs::normalize`.)
    for root in [identity, cbor] {
        let result = within(
            10,
            transfer::fetch(
                net.fetcher.clone(),
                net.peers(),
                root,
                Arc::new(MemStore::default()),
                |_| {},
            ),
        )
        .await;
        assert!(
            matches!(result, Err(FetchError::Decode(_))),
            "{root}: {result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unusable_seeders_fail_without_hanging() {
    let (blocks, root, _) = unixfs::build(&data(2 * CHUNK_SIZE, 8));
    let net = memory_net(3).await;
    // Seeder 0 does not run the protocol at all.
    // Seeder 1 accepts streams and never answers.
    let mut control = net.seeders[1].1.clone();
    let mut incoming = control.accept(PROTOCOL_NAME).unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((_, stream)) = incoming.next().await {
            held.push(stream);
        }
    });
    // Seeder 2 answers every request with an oversized block.
    let mut control = net.seeders[2].1.clone();
    let mut incoming = control.accept(PROTOCOL_NAME).unwrap();
    tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            tokio::spawn(async move {
                let mut stream = stream.compat();
                let mut request = [0u8; 3];
                if stream.read_exact(&mut request).await.is_ok() {
                    let mut answer = vec![0u8];
                    answer.extend_from_slice(&(MAX_BLOCK_SIZE as u32 + 1).to_be_bytes());
                    let _ = stream.write_all(&answer).await;
                    let _ = stream.flush().await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
        }
    });
    // And a peer nobody knows how to reach.
    let unknown = PeerId::random();
    let mut seeders = net.peers();
    seeders.push(unknown);

    // No second hash in `put`: measure the transfer alone.
    let store = Arc::new(MemStore {
        trusting: true,
        ..MemStore::default()
    });
    let started = Instant::now();
    let result = within(
        20,
        transfer::fetch_with(
            impatient(),
            net.fetcher.clone(),
            seeders,
            root,
            store.clone(),
            |_| {},
        ),
    )
    .await;
    assert!(
        matches!(result, Err(FetchError::AllSeedersFailed { missing: 1, .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(store.len(), 0);
    drop(blocks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_say_why_seeders_were_dropped() {
    // Same unusable seeders, plus a good one: the fetch completes and says why each was dropped.
    let (blocks, root, _) = unixfs::build(&data(6 * CHUNK_SIZE, 9));
    let net = memory_net(3).await;
    let mut control = net.seeders[1].1.clone();
    let mut incoming = control.accept(PROTOCOL_NAME).unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((_, stream)) = incoming.next().await {
            held.push(stream);
        }
    });
    net.seed(2, MemStore::with(&blocks));
    let store = Arc::new(MemStore::default());

    // One request at a time per seeder, so that every seeder gets asked something.
    let config = FetchConfig {
        window: 1,
        ..impatient()
    };
    let reports = within(
        30,
        transfer::fetch_with(
            config,
            net.fetcher.clone(),
            net.peers(),
            root,
            store.clone(),
            |_| {},
        ),
    )
    .await
    .expect("fetch");

    store.assert_holds(&blocks);
    let unsupported = reports[0].dropped.as_deref().expect("seeder 0 kept");
    assert!(unsupported.contains("does not support"), "{unsupported}");
    // The silent seeder may or may not have been asked before the good one finished.
    if let Some(why) = reports[1].dropped.as_deref() {
        assert!(why.contains("did not answer"), "{why}");
    }
    assert_eq!(reports[2].blocks, blocks.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_fetches_only_missing_blocks() {
    let (blocks, root, _) = unixfs::build(&data(10 * CHUNK_SIZE + 3, 10));
    let leaves: Vec<&Block> = blocks.iter().filter(|b| b.cid != root).collect();
    assert_eq!(leaves.len(), 11);
    let net = memory_net(2).await;
    let source = MemStore::with(&blocks);
    let stats = [net.seed(0, source.clone()), net.seed(1, source)];

    // The root and the first 6 leaves are there already.
    let store = Arc::new(MemStore::default());
    store.insert(blocks.iter().find(|b| b.cid == root).unwrap());
    for leaf in &leaves[..6] {
        store.insert(leaf);
    }
    let progress = Recorder::default();
    let reports = fetch_all_with(exact(), &net, root, store.clone(), &progress)
        .await
        .expect("fetch");

    store.assert_holds(&blocks);
    let served: u64 = stats.iter().map(ServeStats::blocks_served).sum();
    let requested: u64 = stats.iter().map(ServeStats::requests).sum();
    assert_eq!(served, 5);
    assert_eq!(requested, 5);
    assert_eq!(reports.iter().map(|r| r.blocks).sum::<u64>(), 5);
    assert_eq!(store.puts.load(Ordering::Relaxed), 5);
    let last = progress.last();
    assert_eq!(last.blocks_done, blocks.len() as u64);
    assert_eq!(last.bytes_done, total_bytes(&blocks));

    // Again: nothing left to fetch.
    let reports = fetch_all(&net, root, store.clone(), &Recorder::default())
        .await
        .expect("fetch");
    assert!(reports.iter().all(|r| r.blocks == 0));
    assert_eq!(stats.iter().map(ServeStats::requests).sum::<u64>(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_without_the_root() {
    let (blocks, root, _) = unixfs::build(&data(4 * CHUNK_SIZE, 11));
    let net = memory_net(1).await;
    let stats = net.seed(0, MemStore::with(&blocks));
    let store = Arc::new(MemStore::default());
    // Two leaves, not the root.
    for block in blocks.iter().filter(|b| b.cid != root).take(2) {
        store.insert(block);
    }
    fetch_all(&net, root, store.clone(), &Recorder::default())
        .await
        .expect("fetch");
    store.assert_holds(&blocks);
    assert_eq!(stats.requests(), 3, "the root and two leaves");
}

/// A raw leaf block holding `data`.
fn raw_leaf(data: &[u8]) -> Block {
    Block {
        cid: cid_of(RAW, data),
        data: data.to_vec(),
    }
}

/// A hand-made two-level DAG with tiny leaves, a leaf linked twice and a subtree linked twice.
fn two_level_dag() -> (Vec<Block>, Cid) {
    let leaf = |s: &str| raw_leaf(s.as_bytes());
    let node = |children: &[&Block], sizes: &[u64], tsizes: &[u64]| {
        let node = unixfs::Node {
            links: children
                .iter()
                .zip(tsizes)
                .map(|(b, &tsize)| unixfs::Link { cid: b.cid, tsize })
                .collect(),
            filesize: sizes.iter().sum(),
            blocksizes: sizes.to_vec(),
        };
        let data = unixfs::encode(&node);
        Block {
            cid: cid_of(mcc_blobs::DAG_PB, &data),
            data,
        }
    };
    let (a, b, c, d) = (leaf("aaaa"), leaf("bbbbbb"), leaf("cc"), leaf("dddddddd"));
    let left = node(&[&a, &b, &a], &[4, 6, 4], &[4, 6, 4]);
    let right = node(&[&c, &d], &[2, 8], &[2, 8]);
    let left_size = left.data.len() as u64 + 14;
    let right_size = right.data.len() as u64 + 10;
    let root = node(
        &[&left, &right, &left],
        &[14, 10, 14],
        &[left_size, right_size, left_size],
    );
    let root_cid = root.cid;
    (vec![a, b, c, d, left, right, root], root_cid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_levels_with_shared_blocks() {
    let (blocks, root) = two_level_dag();
    let dag_bytes: u64 = {
        let node = unixfs::decode(&blocks[6].data).unwrap();
        blocks[6].data.len() as u64 + node.links.iter().map(|l| l.tsize).sum::<u64>()
    };
    let net = memory_net(2).await;
    let source = MemStore::with(&blocks);
    let stats = [net.seed(0, source.clone()), net.seed(1, source)];
    let store = Arc::new(MemStore::default());
    let progress = Recorder::default();

    fetch_all_with(exact(), &net, root, store.clone(), &progress)
        .await
        .expect("fetch");

    store.assert_holds(&blocks);
    assert_eq!(
        stats.iter().map(ServeStats::requests).sum::<u64>(),
        blocks.len() as u64,
        "each distinct block is requested once"
    );
    let last = progress.last();
    assert_eq!(last.total_bytes, Some(dag_bytes));
    assert_eq!(last.bytes_done, dag_bytes, "{last:?}");

    // Resume with the inner nodes present but not all their leaves.
    let store = Arc::new(MemStore::default());
    for block in &blocks[4..] {
        store.insert(block);
    }
    store.insert(&blocks[0]);
    let progress = Recorder::default();
    fetch_all_with(exact(), &net, root, store.clone(), &progress)
        .await
        .expect("fetch");
    store.assert_holds(&blocks);
    assert_eq!(store.puts.load(Ordering::Relaxed), 3);
    assert_eq!(progress.last().bytes_done, dag_bytes);
}

/// A file with an empty leaf in the middle (no importer makes one, a crafted DAG can): the
/// empty block is fetched and stored like any other, so the stored DAG is complete, and the
/// file reads back without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_leaf_is_fetched_and_stored() {
    let (a, empty, b) = (raw_leaf(b"ab"), raw_leaf(b""), raw_leaf(b"cd"));
    let node = unixfs::Node {
        links: [&a, &empty, &b]
            .iter()
            .map(|l| unixfs::Link {
                cid: l.cid,
                tsize: l.data.len() as u64,
            })
            .collect(),
        filesize: 4,
        blocksizes: vec![2, 0, 2],
    };
    let data = unixfs::encode(&node);
    let root = Block {
        cid: cid_of(mcc_blobs::DAG_PB, &data),
        data,
    };
    let root_cid = root.cid;
    let blocks = vec![a, empty, b, root];

    let net = memory_net(1).await;
    net.seed(0, MemStore::with(&blocks));
    let store = Arc::new(MemStore::default());
    let progress = Recorder::default();
    fetch_all(&net, root_cid, store.clone(), &progress)
        .await
        .expect("fetch");
    store.assert_holds(&blocks);

    let shape = unixfs::measure(&root_cid, |c| store.get(c)).expect("measure");
    assert_eq!((shape.leaves, shape.size), (3, 4));
    let mut cursor = unixfs::Cursor::new(root_cid, 4, 0..4);
    let mut file = Vec::new();
    while let Some(part) = cursor.next_leaf(|c| store.get(c)).expect("read") {
        let stored = store.get(&part.cid).unwrap().unwrap();
        file.extend_from_slice(&stored[part.range]);
    }
    assert_eq!(file, b"abcd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_requests_drop_the_stream() {
    let (blocks, root, _) = unixfs::build(&data(3 * CHUNK_SIZE, 12));
    let net = memory_net(1).await;
    let stats = net.seed(0, MemStore::with(&blocks));
    let peer = net.seeders[0].0;
    let good = root.to_bytes();
    let mut trailing = vec![1, 0, good.len() as u8 + 1];
    trailing.extend_from_slice(&good);
    trailing.push(0);
    let mut after_good = vec![1, 0, good.len() as u8];
    after_good.extend_from_slice(&good);
    after_good.extend_from_slice(b"garbage");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\xde\xad\xbe\xef garbage".to_vec()),
        ("oversized CID length", vec![1, 0xff, 0xff, 1, 2, 3]),
        ("empty CID", vec![1, 0, 0]),
        ("invalid CID", b"\x01\x00\x05hello".to_vec()),
        ("bytes after the CID", trailing),
        ("garbage after a good request", after_good),
    ];
    let mut control = net.fetcher.clone();
    for (what, bytes) in cases {
        let stream = within(10, control.open_stream(peer, PROTOCOL_NAME))
            .await
            .expect("open");
        let mut stream = stream.compat();
        // The seeder may drop the stream while we are still writing.
        let _ = stream.write_all(&bytes).await;
        let _ = stream.flush().await;
        let mut received = Vec::new();
        let read = within(10, stream.read_to_end(&mut received)).await;
        // Only a good request gets an answer (5 bytes of header plus the block).
        if what.starts_with("garbage after") {
            let root_len = blocks.iter().find(|b| b.cid == root).unwrap().data.len();
            assert_eq!(received.len(), 5 + root_len, "{what}: {read:?}");
            assert_eq!(received[0], 0, "{what}");
        } else {
            assert!(received.is_empty(), "{what}: got {received:?}");
        }
    }
    assert_eq!(stats.requests(), 1);

    // The seeder still serves.
    let store = Arc::new(MemStore::default());
    fetch_all(&net, root, store.clone(), &Recorder::default())
        .await
        .expect("fetch");
    store.assert_holds(&blocks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelined_requests_are_answered_in_order() {
    let (blocks, _, _) = unixfs::build(&data(4 * CHUNK_SIZE, 13));
    let net = memory_net(1).await;
    let missing = cid_of(RAW, b"not there");
    net.seed(0, MemStore::with(&blocks));
    let mut requests = Vec::new();
    let mut order: Vec<Option<&Block>> = Vec::new();
    for block in blocks.iter().rev() {
        for (cid, expect) in [(block.cid, Some(block)), (missing, None)] {
            let bytes = cid.to_bytes();
            requests.push(1);
            requests.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            requests.extend_from_slice(&bytes);
            order.push(expect);
        }
    }
    let mut control = net.fetcher.clone();
    let stream = within(10, control.open_stream(net.seeders[0].0, PROTOCOL_NAME))
        .await
        .expect("open");
    let mut stream = stream.compat();
    stream.write_all(&requests).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answers = Vec::new();
    within(10, stream.read_to_end(&mut answers)).await.unwrap();
    let mut rest = &answers[..];
    for expect in order {
        let status = rest[0];
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let body = &rest[5..5 + len];
        match expect {
            Some(block) => {
                assert_eq!(status, 0);
                assert_eq!(body, &block.data[..]);
            }
            None => assert_eq!(status, 1),
        }
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty());
}

/// Answers up to `limit` GetBlock requests on `stream` from `store` the simple way (one at a
/// time, no read-ahead), then closes the stream.
async fn answer_requests(stream: libp2p::Stream, store: Arc<MemStore>, limit: usize) {
    let mut stream = stream.compat();
    for _ in 0..limit {
        let mut header = [0u8; 3];
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let mut cid = vec![0u8; usize::from(u16::from_be_bytes([header[1], header[2]]))];
        stream.read_exact(&mut cid).await.unwrap();
        let cid = Cid::try_from(cid).unwrap();
        let (status, body) = match store.get(&cid).unwrap() {
            Some(data) => (0u8, data),
            None => (1u8, Vec::new()),
        };
        let mut answer = vec![status];
        answer.extend_from_slice(&(body.len() as u32).to_be_bytes());
        answer.extend_from_slice(&body);
        if stream.write_all(&answer).await.is_err() {
            return;
        }
    }
    let _ = stream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_closed_before_an_answer_are_retried() {
    // As happens to streams beyond the acceptor's queue and holding room: the seeder drops
    // every other stream without a word, and closes each stream it serves after 3 answers.
    let (blocks, root, _) = unixfs::build(&data(9 * CHUNK_SIZE, 16));
    let net = memory_net(1).await;
    let source = MemStore::with(&blocks);
    let mut control = net.seeders[0].1.clone();
    let mut incoming = control.accept(PROTOCOL_NAME).unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            if counter.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
                drop(stream);
            } else {
                tokio::spawn(answer_requests(stream, source.clone(), 3));
            }
        }
    });
    let store = Arc::new(MemStore::default());
    let reports = fetch_all(&net, root, store.clone(), &Recorder::default())
        .await
        .expect("fetch");
    store.assert_holds(&blocks);
    assert!(reports[0].dropped.is_none(), "{reports:?}");
    assert_eq!(reports[0].blocks, blocks.len() as u64);
    assert!(accepted.load(Ordering::Relaxed) >= 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hand_written_seeder_interoperates() {
    // A seeder that answers one request at a time, without reading ahead.
    let (blocks, root, _) = unixfs::build(&data(3 * CHUNK_SIZE + 5, 17));
    let net = memory_net(1).await;
    let source = MemStore::with(&blocks);
    let mut control = net.seeders[0].1.clone();
    let mut incoming = control.accept(PROTOCOL_NAME).unwrap();
    tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            tokio::spawn(answer_requests(stream, source.clone(), usize::MAX));
        }
    });
    let store = Arc::new(MemStore::default());
    fetch_all(&net, root, store.clone(), &Recorder::default())
        .await
        .expect("fetch");
    store.assert_holds(&blocks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_twice_is_refused() {
    let net = memory_net(1).await;
    let store: Arc<dyn BlockStore> = Arc::new(MemStore::default());
    let first = transfer::serve(
        net.seeders[0].1.clone(),
        store.clone(),
        ServeStats::default(),
    );
    let second = transfer::serve(net.seeders[0].1.clone(), store, ServeStats::default());
    assert!(matches!(
        within(5, second).await,
        Err(ServeError::AlreadyRegistered)
    ));
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_peers_get_nothing() {
    let (blocks, root, _) = unixfs::build(&data(CHUNK_SIZE + 1, 14));
    let net = memory_net(1).await;
    let stats = ServeStats::default();
    tokio::spawn(transfer::serve_with(
        net.seeders[0].1.clone(),
        MemStore::with(&blocks),
        stats.clone(),
        |_: &PeerId| false,
    ));
    let store = Arc::new(MemStore::default());
    let result = within(
        30,
        transfer::fetch_with(
            impatient(),
            net.fetcher.clone(),
            net.peers(),
            root,
            store.clone(),
            |_| {},
        ),
    )
    .await;
    match result {
        Err(FetchError::AllSeedersFailed { last, .. }) => {
            assert!(last.contains("refused"), "{last}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(stats.refused() > 0);
    assert_eq!(stats.blocks_served(), 0);
    assert_eq!(store.len(), 0);
}

/// Fetches a DAG over TCP from `n` seeders and prints the rate.
async fn throughput(n: usize, blocks: &[Block], root: Cid) -> f64 {
    let net = tcp_net(n).await;
    let source = MemStore::with(blocks);
    let stats: Vec<ServeStats> = (0..n).map(|i| net.seed(i, source.clone())).collect();
    // No second hash in `put`: measure the transfer alone.
    let store = Arc::new(MemStore {
        trusting: true,
        ..MemStore::default()
    });
    let started = Instant::now();
    let reports = within(
        300,
        transfer::fetch(
            net.fetcher.clone(),
            net.peers(),
            root,
            store.clone(),
            |_| {},
        ),
    )
    .await
    .expect("fetch");
    let elapsed = started.elapsed();
    store.assert_holds(blocks);
    let bytes = total_bytes(blocks) as f64;
    let rate = bytes / elapsed.as_secs_f64() / 1e6;
    let shares: Vec<u64> = reports.iter().map(|r| r.blocks).collect();
    println!(
        "{n} seeder(s): {:.1} MiB in {elapsed:.2?} = {rate:.0} MB/s (blocks per seeder {shares:?}, served {:?})",
        bytes / (1024.0 * 1024.0),
        stats
            .iter()
            .map(ServeStats::blocks_served)
            .collect::<Vec<_>>()
    );
    rate
}

#[tokio::test(flavor = "multi_thread")]
async fn throughput_over_tcp() {
    // Unoptimized builds are far slower at hashing and encryption: use less data there.
    let mib = if cfg!(debug_assertions) { 8 } else { 64 };
    let (blocks, root, _) = unixfs::build(&data(mib * CHUNK_SIZE, 15));
    let one = throughput(1, &blocks, root).await;
    let three = throughput(3, &blocks, root).await;
    println!("3 seeders / 1 seeder: {:.2}x", three / one);
}

/// The review's "DAG bomb": `depth` dag-pb levels, each node linking `fanout` times to the same
/// child, over one 1-byte raw leaf: `depth + 1` distinct blocks, `fanout^depth` leaves in file
/// order. Returns the blocks and the root.
fn bomb(depth: u32, fanout: usize) -> (Vec<Block>, Cid) {
    let leaf = Block {
        cid: cid_of(RAW, b"x"),
        data: b"x".to_vec(),
    };
    let (mut child, mut size, mut tsize) = (leaf.cid, 1u64, 1u64);
    let mut blocks = vec![leaf];
    for _ in 0..depth {
        let node = unixfs::Node {
            links: vec![unixfs::Link { cid: child, tsize }; fanout],
            filesize: size * fanout as u64,
            blocksizes: vec![size; fanout],
        };
        let data = unixfs::encode(&node);
        tsize = data.len() as u64 + tsize * fanout as u64;
        size *= fanout as u64;
        child = cid_of(mcc_blobs::DAG_PB, &data);
        blocks.push(Block { cid: child, data });
    }
    (blocks, child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dag_bombs_are_refused_by_the_fetch() {
    let net = memory_net(1).await;
    for depth in [2, 3, 4] {
        let (blocks, root) = bomb(depth, mcc_blobs::MAX_LINKS);
        let stats = ServeStats::default();
        let seeder = tokio::spawn(transfer::serve(
            net.seeders[0].1.clone(),
            MemStore::with(&blocks),
            stats.clone(),
        ));
        let store = Arc::new(MemStore::default());
        let started = Instant::now();
        let result = within(
            10,
            transfer::fetch(
                net.fetcher.clone(),
                net.peers(),
                root,
                store.clone(),
                |_| {},
            ),
        )
        .await;
        assert!(
            matches!(result, Err(FetchError::Refused(_))),
            "depth {depth}: {result:?}"
        );
        assert!(
            result.unwrap_err().to_string().contains("blob DAG refused"),
            "a clear message"
        );
        // Each distinct block at most once: nothing per leaf in file order.
        assert!(
            store.len() <= blocks.len(),
            "depth {depth}: {}",
            store.len()
        );
        assert!(stats.requests() <= blocks.len() as u64, "depth {depth}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "depth {depth} took {:?}",
            started.elapsed()
        );
        // Resuming from what was stored is refused too (without fetching the rest).
        let again = within(
            10,
            transfer::fetch(
                net.fetcher.clone(),
                net.peers(),
                root,
                store.clone(),
                |_| {},
            ),
        )
        .await;
        assert!(matches!(again, Err(FetchError::Refused(_))), "{again:?}");
        seeder.abort();
        // Let the seeder unregister the protocol before the next round serves again.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_of_zeros_repeats_blocks_and_is_fetched() {
    // 400 MiB of zeros: 4 distinct blocks (one leaf 400 times, one node twice).
    let mut builder = unixfs::Builder::new();
    let zero = vec![0u8; CHUNK_SIZE];
    let mut distinct: HashMap<Cid, Block> = HashMap::new();
    for _ in 0..400 {
        distinct.extend(builder.push(&zero).into_iter().map(|b| (b.cid, b)));
    }
    let (rest, root, size) = builder.finish();
    distinct.extend(rest.into_iter().map(|b| (b.cid, b)));
    let blocks: Vec<Block> = distinct.into_values().collect();
    assert_eq!(blocks.len(), 4);
    assert_eq!(size, 400 * CHUNK_SIZE as u64);

    let net = memory_net(1).await;
    let stats = net.seed(0, MemStore::with(&blocks));
    let store = Arc::new(MemStore::default());
    let progress = Recorder::default();
    fetch_all(&net, root, store.clone(), &progress)
        .await
        .expect("a file of zeros is not a bomb");
    store.assert_holds(&blocks);
    assert_eq!(stats.requests(), 4, "each distinct block once");
    let last = progress.last();
    assert_eq!(last.total_bytes, Some(last.bytes_done));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_blocks_of_an_interrupted_fetch_are_fetched_again() {
    let (blocks, root, _) = unixfs::build(&data(4 * CHUNK_SIZE, 18));
    let leaves: Vec<&Block> = blocks.iter().filter(|b| b.cid != root).collect();
    let net = memory_net(1).await;
    let stats = net.seed(0, MemStore::with(&blocks));
    // An interrupted fetch: the root and every leaf are there, but after a crash one leaf file is
    // empty, one truncated and one has a flipped bit.
    let store = Arc::new(MemStore {
        trusting: true,
        ..MemStore::default()
    });
    store.insert(blocks.iter().find(|b| b.cid == root).unwrap());
    for (i, leaf) in leaves.iter().enumerate() {
        let mut data = leaf.data.clone();
        match i {
            0 => data.clear(),
            1 => data.truncate(1000),
            2 => data[12345] ^= 1,
            _ => {}
        }
        store.insert(&Block {
            cid: leaf.cid,
            data,
        });
    }
    fetch_all(&net, root, store.clone(), &Recorder::default())
        .await
        .expect("fetch");
    store.assert_holds(&blocks);
    assert_eq!(stats.requests(), 3, "the three damaged leaves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seeders_refused_by_allow_send_nothing_that_is_kept() {
    let (blocks, root, _) = unixfs::build(&data(6 * CHUNK_SIZE, 19));
    let net = memory_net(2).await;
    let source = MemStore::with(&blocks);
    let stats = [net.seed(0, source.clone()), net.seed(1, source)];
    let banned = net.seeders[0].0;
    let config = FetchConfig {
        allow: Some(Arc::new(move |p: &PeerId| *p != banned)),
        ..FetchConfig::default()
    };
    let store = Arc::new(MemStore::default());
    let reports = within(
        30,
        transfer::fetch_with(
            config.clone(),
            net.fetcher.clone(),
            net.peers(),
            root,
            store.clone(),
            |_| {},
        ),
    )
    .await
    .expect("fetch from the allowed seeder");
    store.assert_holds(&blocks);
    assert_eq!(reports[0].blocks, 0, "{reports:?}");
    assert!(
        reports[0]
            .dropped
            .as_deref()
            .is_some_and(|d| d.contains("not allowed"))
    );
    assert_eq!(
        stats[0].requests(),
        0,
        "nothing asked of the refused seeder"
    );

    // Only refused seeders: nothing stored.
    let store = Arc::new(MemStore::default());
    let result = within(
        30,
        transfer::fetch_with(
            config,
            net.fetcher.clone(),
            vec![banned],
            root,
            store.clone(),
            |_| {},
        ),
    )
    .await;
    assert!(
        matches!(result, Err(FetchError::AllSeedersFailed { .. })),
        "{result:?}"
    );
    assert_eq!(store.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_that_does_not_read_cannot_stall_the_others() {
    let (blocks, root, _) = unixfs::build(&data(8 * CHUNK_SIZE, 20));
    let mut seeder = Swarm::new_ephemeral_tokio(new_behaviour);
    seeder.listen().with_memory_addr_external().await;
    let mut hostile = Swarm::new_ephemeral_tokio(new_behaviour);
    let mut honest = Swarm::new_ephemeral_tokio(new_behaviour);
    hostile.connect(&mut seeder).await;
    honest.connect(&mut seeder).await;
    let seeder_id = *seeder.local_peer_id();
    let stats = ServeStats::default();
    tokio::spawn(transfer::serve(
        seeder.behaviour().control(),
        MemStore::with(&blocks),
        stats.clone(),
    ));
    let mut hostile_control = hostile.behaviour().control();
    let honest_control = honest.behaviour().control();
    for swarm in [seeder, hostile, honest] {
        tokio::spawn(swarm.loop_on_next());
    }

    // The hostile peer opens many streams, asks for 1 MiB blocks on each and never reads.
    let leaf = blocks
        .iter()
        .find(|b| b.cid != root)
        .unwrap()
        .cid
        .to_bytes();
    let mut requests = Vec::new();
    for _ in 0..16 {
        requests.push(1);
        requests.extend_from_slice(&(leaf.len() as u16).to_be_bytes());
        requests.extend_from_slice(&leaf);
    }
    let mut held = Vec::new();
    for _ in 0..64 {
        let stream = within(10, hostile_control.open_stream(seeder_id, PROTOCOL_NAME))
            .await
            .expect("open");
        let mut stream = stream.compat();
        let _ = stream.write_all(&requests).await;
        let _ = stream.flush().await;
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Another peer still gets the whole DAG, quickly.
    let store = Arc::new(MemStore::default());
    let reports = within(
        15,
        transfer::fetch(honest_control, vec![seeder_id], root, store.clone(), |_| {}),
    )
    .await
    .expect("fetch while a peer stalls");
    store.assert_holds(&blocks);
    assert!(reports[0].dropped.is_none());
    assert!(
        stats.refused() > 0,
        "the hostile peer's extra streams were refused"
    );
    drop(held);
}

/// `fetch_streaming` with the seeders sent on a channel: what `late` yields.
fn streaming(
    net: &Net,
    initial: Vec<PeerId>,
    root: Cid,
    store: Arc<MemStore>,
) -> (
    tokio::sync::mpsc::Sender<transfer::NewSeeder>,
    tokio::task::JoinHandle<Result<Vec<SeederReport>, FetchError>>,
) {
    let (late, more) = tokio::sync::mpsc::channel(8);
    let fetch = tokio::spawn(transfer::fetch_streaming(
        impatient(),
        net.fetcher.clone(),
        initial,
        more,
        root,
        store,
        |_| {},
    ));
    (late, fetch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_seeders_join_a_running_fetch() {
    let (blocks, root, _) = unixfs::build(&data(16 * CHUNK_SIZE, 21));
    let net = memory_net(2).await;
    let source = MemStore::with(&blocks);
    net.seed(0, source.clone());
    net.seed(1, source);
    let store = Arc::new(MemStore::default());
    let (late, fetch) = streaming(&net, vec![], root, store.clone());

    // No seeder yet: the fetch waits for one instead of failing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!fetch.is_finished(), "finished without a seeder");
    let (a, b) = (net.seeders[0].0, net.seeders[1].0);
    for seeder in [a, b, a] {
        late.send(transfer::NewSeeder::Blobs(seeder)).await.unwrap();
    }
    // A Bitswap seeder without `FetchConfig::remote` is ignored.
    late.send(transfer::NewSeeder::Remote(PeerId::random()))
        .await
        .unwrap();
    drop(late);
    let reports = within(60, fetch).await.unwrap().expect("fetch");
    store.assert_holds(&blocks);
    let peers: Vec<PeerId> = reports.iter().map(|r| r.peer).collect();
    assert_eq!(
        peers,
        vec![a, b],
        "each seeder once, in the order they came"
    );
    let fetched: u64 = reports.iter().map(|r| r.blocks).sum();
    assert_eq!(fetched, blocks.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fetch_whose_seeders_lack_blocks_waits_for_late_ones() {
    let (blocks, root, _) = unixfs::build(&data(4 * CHUNK_SIZE, 22));
    let net = memory_net(2).await;
    // Seeder 0 has nothing: it answers "not found" to everything.
    net.seed(0, Arc::new(MemStore::default()));
    net.seed(1, MemStore::with(&blocks));
    let store = Arc::new(MemStore::default());
    let (late, fetch) = streaming(&net, vec![net.seeders[0].0], root, store.clone());

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !fetch.is_finished(),
        "gave up while more seeders could come"
    );
    late.send(transfer::NewSeeder::Blobs(net.seeders[1].0))
        .await
        .unwrap();
    drop(late);
    let reports = within(60, fetch).await.unwrap().expect("fetch");
    store.assert_holds(&blocks);
    assert_eq!(reports[0].blocks, 0);
    assert_eq!(reports[1].blocks, blocks.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streamed_seeders_that_never_come_are_no_seeders() {
    let (_, root, _) = unixfs::build(&data(2 * CHUNK_SIZE, 23));
    let net = memory_net(1).await;
    net.seed(0, Arc::new(MemStore::default()));
    let (late, fetch) = streaming(&net, vec![], root, Arc::new(MemStore::default()));
    drop(late);
    let result = within(10, fetch).await.unwrap();
    assert!(matches!(result, Err(FetchError::NoSeeders)), "{result:?}");

    // A seeder lacking the blocks: the fetch fails once no more can come.
    let (late, fetch) = streaming(
        &net,
        vec![net.seeders[0].0],
        root,
        Arc::new(MemStore::default()),
    );
    drop(late);
    let result = within(10, fetch).await.unwrap();
    assert!(
        matches!(result, Err(FetchError::AllSeedersFailed { .. })),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_seeder_joining_at_the_tail_leaves_every_block_stored_once() {
    // 16 leaves: the first seeder's window (8) and the second's take them all before the third
    // joins; it then asks for blocks the others are still sending.
    let (blocks, root, _) = unixfs::build(&data(16 * CHUNK_SIZE, 24));
    let net = memory_net(3).await;
    let source = MemStore::with(&blocks);
    let stats: Vec<ServeStats> = (0..3).map(|i| net.seed(i, source.clone())).collect();
    let store = Arc::new(MemStore::default());
    let (late, fetch) = streaming(&net, net.peers()[..2].to_vec(), root, store.clone());
    // Wait until the queue is handed out: the root is stored and its leaves requested.
    within(30, async {
        while stats[0].requests() + stats[1].requests() < blocks.len() as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    late.send(transfer::NewSeeder::Blobs(net.seeders[2].0))
        .await
        .unwrap();
    drop(late);
    let reports = within(60, fetch).await.unwrap().expect("fetch");
    store.assert_holds(&blocks);
    assert_eq!(store.puts.load(Ordering::Relaxed), blocks.len() as u64);
    let fetched: u64 = reports.iter().map(|r| r.blocks).sum();
    assert_eq!(fetched, blocks.len() as u64);
    assert_eq!(reports.len(), 3);
}
