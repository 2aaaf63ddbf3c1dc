//! A hostile libp2p peer for `tests/hostile.rs`: bare TCP + noise + yamux connections driven
//! by hand (no swarm, so none of libp2p's own manners), multistream-select spoken byte by
//! byte, and raw TCP sockets.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use futures::{AsyncReadExt as _, AsyncWriteExt as _};
use libp2p::core::muxing::{StreamMuxerBox, StreamMuxerExt as _, SubstreamBox};
use libp2p::core::transport::{Boxed, DialOpts, PortUse};
use libp2p::core::upgrade::Version;
use libp2p::core::{Endpoint, Transport as _};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, noise, tcp, yamux};
use tokio::sync::{mpsc, oneshot};

type OpenReply = oneshot::Sender<io::Result<SubstreamBox>>;

/// One identity dialling the victim.
pub struct Abuser {
    transport: Boxed<(PeerId, StreamMuxerBox)>,
}

impl Abuser {
    pub fn new() -> Result<Self> {
        let key = Keypair::generate_ed25519();
        let transport = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .upgrade(Version::V1)
            .authenticate(noise::Config::new(&key)?)
            .multiplex({
                // As many streams as yamux allows, so the victim's cap is what ends a flood.
                let mut y = yamux::Config::default();
                y.set_max_num_streams(4096);
                y
            })
            .timeout(Duration::from_secs(10))
            .boxed();
        Ok(Self { transport })
    }

    /// Opens one connection (TCP, noise, yamux) to `addr`, driven by a task of its own.
    pub async fn connect(&mut self, addr: &Multiaddr) -> Result<Conn> {
        self.dial(addr)?.await
    }

    /// [`connect`](Self::connect) as a future that does not borrow the abuser.
    pub fn dial(
        &mut self,
        addr: &Multiaddr,
    ) -> Result<impl std::future::Future<Output = Result<Conn>> + use<>> {
        let dial = self.transport.dial(
            addr.clone(),
            DialOpts {
                role: Endpoint::Dialer,
                port_use: PortUse::New,
            },
        )?;
        Ok(async move {
            let (_, muxer) = dial.await?;
            Ok(Conn::drive(muxer))
        })
    }
}

/// A connection of the abuser: streams on demand, inbound streams refused, and a flag that
/// turns true when the victim closed it.
#[derive(Clone)]
pub struct Conn {
    open: mpsc::Sender<OpenReply>,
    closed: Arc<AtomicBool>,
}

impl Conn {
    fn drive(mut muxer: StreamMuxerBox) -> Self {
        let (open, mut requests) = mpsc::channel::<OpenReply>(64);
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        tokio::spawn(async move {
            let mut waiting: Option<OpenReply> = None;
            let mut requests_open = true;
            futures::future::poll_fn(|cx| {
                loop {
                    let mut progress = false;
                    if waiting.is_none() && requests_open {
                        match requests.poll_recv(cx) {
                            Poll::Ready(Some(r)) => waiting = Some(r),
                            Poll::Ready(None) => requests_open = false,
                            Poll::Pending => {}
                        }
                    }
                    if waiting.is_some()
                        && let Poll::Ready(r) = muxer.poll_outbound_unpin(cx)
                    {
                        if let Some(reply) = waiting.take() {
                            let _ = reply.send(r.map_err(io::Error::other));
                        }
                        progress = true;
                    }
                    match muxer.poll_inbound_unpin(cx) {
                        Poll::Ready(Ok(s)) => {
                            drop(s);
                            progress = true;
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending => {}
                    }
                    match muxer.poll_unpin(cx) {
                        Poll::Ready(Ok(_)) => progress = true,
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending => {}
                    }
                    if !progress {
                        return Poll::Pending;
                    }
                }
            })
            .await;
            flag.store(true, Ordering::SeqCst);
        });
        Self { open, closed }
    }

    /// Whether the victim closed this connection.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// A new outbound stream (no protocol yet).
    pub async fn stream(&self) -> Result<SubstreamBox> {
        let (tx, rx) = oneshot::channel();
        self.open.send(tx).await.context("connection gone")?;
        Ok(rx.await.context("connection gone")??)
    }
}

/// A multistream-select message: varint length, then the line.
fn ms_message(line: &str) -> Vec<u8> {
    let body = format!("{line}\n");
    let mut out = Vec::new();
    let mut n = body.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(body.as_bytes());
    out
}

/// Sends the multistream header and `protocol` without waiting (as a lazy dialer does).
pub async fn propose(stream: &mut SubstreamBox, protocol: &str) -> Result<()> {
    let mut hello = ms_message("/multistream/1.0.0");
    hello.extend(ms_message(protocol));
    stream.write_all(&hello).await?;
    stream.flush().await?;
    Ok(())
}

async fn read_ms_message(stream: &mut SubstreamBox) -> Result<String> {
    let mut len = 0usize;
    for shift in (0..21).step_by(7) {
        let mut b = [0u8; 1];
        stream.read_exact(&mut b).await?;
        len |= ((b[0] & 0x7f) as usize) << shift;
        if b[0] & 0x80 == 0 {
            let mut body = vec![0u8; len.min(1024)];
            stream.read_exact(&mut body).await?;
            return Ok(String::from_utf8_lossy(&body).trim_end().to_string());
        }
    }
    bail!("bad multistream length")
}

/// A stream on `conn` that speaks `protocol`, confirmed by the victim.
pub async fn open_protocol(conn: &Conn, protocol: &str) -> Result<SubstreamBox> {
    let mut s = conn.stream().await?;
    propose(&mut s, protocol).await?;
    let header = read_ms_message(&mut s).await?;
    let answer = read_ms_message(&mut s).await?;
    if answer != protocol {
        bail!("{protocol}: the victim answered {header:?} / {answer:?}");
    }
    Ok(s)
}

/// What became of a flood of bytes.
#[derive(Debug)]
pub struct Flood {
    /// Bytes the victim let in before it closed the stream or stopped reading.
    pub written: u64,
    /// The victim closed or reset the stream (or the connection) within the time.
    pub cut_off: bool,
}

/// Writes 0xff bytes (a huge length prefix, then a frame that never ends) on `stream` for at
/// most `budget`.
pub async fn flood<W: futures::AsyncWrite + Unpin>(stream: &mut W, budget: Duration) -> Flood {
    let chunk = vec![0xffu8; 16 * 1024];
    let mut written = 0u64;
    let deadline = tokio::time::Instant::now() + budget;
    loop {
        match tokio::time::timeout_at(deadline, stream.write(&chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Flood {
                    written,
                    cut_off: true,
                };
            }
            Ok(Ok(n)) => written += n as u64,
            Err(_) => {
                return Flood {
                    written,
                    cut_off: false,
                };
            }
        }
    }
}

/// Waits until the victim closes `stream` (EOF, reset or error on read) for at most `budget`.
pub async fn closed_within<R: futures::AsyncRead + Unpin>(
    stream: &mut R,
    budget: Duration,
) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + budget;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}
