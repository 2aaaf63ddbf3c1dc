//! The three nodes of a NAT lab run ([`Trio`]): a relay server on the public segment and a
//! relay client on each host behind NAT, plus what the NAT tests and the NAT bench measure
//! with them: when hostA first lists hostB and when that connection becomes direct, echo, a
//! service forward checked with sha256 at both ends.
//!
//! The NAT flags are named once here ([`RELAY_SERVER`], [`RELAY`]), as the README's "NAT
//! traversal" section documents them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Daemon;
use super::natlab::{Host, Lab, Nat, Transport};

/// Makes a node a circuit relay v2 server.
pub const RELAY_SERVER: &str = "--relay-server";
/// Reserves a slot on the relay at this address (repeatable).
pub const RELAY: &str = "--relay";
/// Name of the service hostB offers for forwards.
pub const SERVICE: &str = "sink";
/// Where the forward's service listens inside hostB, and hostA's listener inside hostA.
const SERVICE_PORT: u16 = 5001;
const LISTENER_PORT: u16 = 5002;

/// Nodes on the relay host, hostA and hostB of one lab. Dropped before the lab.
pub struct Trio {
    pub relay: Daemon,
    pub a: Daemon,
    pub b: Daemon,
    pub relay_id: String,
    pub a_id: String,
    pub b_id: String,
    pub transport: Transport,
    pub lab: Lab,
}

impl Trio {
    /// A fresh lab with `nat`, or `None` when the machine cannot make one (see
    /// [`Lab::create`]); the relay runs `--relay-server` with mcc's default limits, and each
    /// host knows only the relay (`--boot` and `--relay` its address).
    pub async fn start(nat: Nat, transport: Transport, what: &str) -> Result<Option<Self>> {
        let Some(lab) = Lab::create(nat, what)? else {
            return Ok(None);
        };
        let relay = lab.start(Host::Relay, transport, &[RELAY_SERVER]).await?;
        let relay_id = relay.peer_id().await?;
        let relay_addr = format!("{}/p2p/{relay_id}", lab.multiaddr(Host::Relay, transport));
        let flags = ["--boot", &relay_addr, RELAY, &relay_addr];
        let a = lab.start(Host::A, transport, &flags).await?;
        let b = lab.start(Host::B, transport, &flags).await?;
        let (a_id, b_id) = (a.peer_id().await?, b.peer_id().await?);
        Ok(Some(Self {
            relay,
            a,
            b,
            relay_id,
            a_id,
            b_id,
            transport,
            lab,
        }))
    }

    /// All three logs and the routers' counters, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- relay log ---\n{}\n--- hostA log ---\n{}\n--- hostB log ---\n{}\n{}",
            self.relay.log(),
            self.a.log(),
            self.b.log(),
            self.lab.diagnostics()
        )
    }

    /// hostA's view of hostB: `None` while not connected, else whether it is relayed only.
    pub async fn a_sees_b(&self) -> Result<Option<bool>> {
        peer_relayed(&self.a, &self.b_id).await
    }

    /// Waits (at most `discover`) until hostA lists hostB, then (at most `direct`) until that
    /// connection is direct. Returns the time from first contact to direct: `Ok(None)` when it
    /// stayed relayed, zero when the first contact was already direct.
    pub async fn first_contact_to_direct(
        &self,
        discover: Duration,
        direct: Duration,
        poll: Duration,
    ) -> Result<Option<Duration>> {
        let deadline = Instant::now() + discover;
        let first = loop {
            if let Some(relayed) = self.a_sees_b().await? {
                break (Instant::now(), relayed);
            }
            if Instant::now() > deadline {
                bail!("hostA did not find hostB within {discover:?} through the relay");
            }
            tokio::time::sleep(poll).await;
        };
        let (contact, mut relayed) = first;
        while relayed {
            if contact.elapsed() > direct {
                return Ok(None);
            }
            tokio::time::sleep(poll).await;
            // A connection that went away counts as still relayed (it comes back relayed).
            relayed = self.a_sees_b().await?.unwrap_or(true);
        }
        Ok(Some(contact.elapsed()))
    }

    /// hostA echoes off hostB; fails unless hostB answered with the message.
    pub async fn echo_a_to_b(&self) -> Result<()> {
        let answer = self.a.api.echo("through the NAT", Some(&self.b_id)).await?;
        let reply = answer
            .replies
            .iter()
            .find(|r| r.peer_id == self.b_id)
            .with_context(|| format!("no reply from hostB: {answer:?}"))?;
        ensure!(
            reply.error.is_none() && reply.message.as_deref() == Some("through the NAT"),
            "hostB's echo: {reply:?}"
        );
        Ok(())
    }

    /// hostB offers [`SERVICE`] (a [`start_sink`] inside hostB) and hostA a listener for it
    /// pinned to hostB; returns the listener's address inside hostA, and the sink.
    pub async fn forward_a_to_b(&self) -> Result<(SocketAddr, Sink)> {
        let service = SocketAddr::from(([127, 0, 0, 1], SERVICE_PORT));
        let sink = start_sink(&self.lab, Host::B, service).await?;
        self.b
            .api
            .add_service(SERVICE, &format!("tcp://{service}"))
            .await?;
        let local = SocketAddr::from(([127, 0, 0, 1], LISTENER_PORT));
        self.a
            .api
            .add_listener(SERVICE, &format!("tcp://{local}"), Some(&self.b_id))
            .await?;
        Ok((local, sink))
    }

    /// [`send_through`] from hostA.
    pub async fn send_through(&self, local: SocketAddr, bytes: u64) -> Result<Duration> {
        send_through(&self.lab, Host::A, local, bytes).await
    }
}

/// A sink accepting connections until dropped: each one is read to EOF and answered with
/// `<length> <sha256 hex>`.
pub struct Sink(tokio::task::JoinHandle<()>);

impl Drop for Sink {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A [`Sink`] on `addr` inside `host`.
pub async fn start_sink(lab: &Lab, host: Host, addr: SocketAddr) -> Result<Sink> {
    let listener = lab.bind(host, addr).await?;
    Ok(Sink(tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(sink(conn));
        }
    })))
}

/// Sends `bytes` pseudo-random bytes from inside `from` to the [`start_sink`] (or a forward to
/// one) at `to`, and checks that the sink got exactly them (its sha256 and length); returns
/// the time taken.
pub async fn send_through(lab: &Lab, from: Host, to: SocketAddr, bytes: u64) -> Result<Duration> {
    // One pseudo-random block (xorshift), sent over and over: cheap even in a debug build.
    let mut state = bytes | 1;
    let block: Vec<u8> = (0..256 * 1024 / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    let start = Instant::now();
    let conn = lab.connect(from, to).await?;
    let (mut r, mut w) = conn.into_split();
    let writer = async {
        let mut hash = Sha256::new();
        let mut left = bytes;
        while left > 0 {
            let n = usize::try_from(left.min(block.len() as u64))?;
            hash.update(&block[..n]);
            w.write_all(&block[..n]).await?;
            left -= n as u64;
        }
        w.shutdown().await?;
        anyhow::Ok(hash.finalize())
    };
    let reader = async {
        let mut answer = Vec::new();
        r.read_to_end(&mut answer).await?;
        anyhow::Ok(answer)
    };
    let (sent, answer) = tokio::try_join!(writer, reader)?;
    let want = format!("{bytes} {sent:x}");
    let got = String::from_utf8_lossy(&answer);
    ensure!(
        got == want,
        "the sink got other bytes than were sent: {got:?}, want {want:?}"
    );
    Ok(start.elapsed())
}

/// The sink service: reads to EOF, answers `<length> <sha256 hex>`.
async fn sink(mut conn: tokio::net::TcpStream) -> Result<()> {
    let mut hash = Sha256::new();
    let mut n = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let k = conn.read(&mut buf).await?;
        if k == 0 {
            break;
        }
        n += k as u64;
        hash.update(&buf[..k]);
    }
    conn.write_all(format!("{n} {:x}", hash.finalize()).as_bytes())
        .await?;
    conn.shutdown().await?;
    Ok(())
}

/// `node`'s view of peer `id`: `None` when not connected, else its `relayed` flag.
pub async fn peer_relayed(node: &Daemon, id: &str) -> Result<Option<bool>> {
    Ok(node
        .peers()
        .await?
        .iter()
        .find(|p| p.peer_id.to_string() == id)
        .map(|p| p.relayed))
}
