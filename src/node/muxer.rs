//! Yamux as the node's stream multiplexer over TCP (and relayed TCP), with data frames of
//! up to [`SPLIT_SEND_SIZE`] bytes instead of the 16 KiB that `libp2p-yamux` fixes.
//!
//! Why: the receiver of a yamux stream answers every data frame it reads with a window
//! update, and a Noise or TLS sender seals every flushed frame on its own. With 16 KiB frames
//! a js-libp2p peer (Helia) fetching blocks from us does four times the per-frame work of
//! the same transfer from another js peer, which sends 64 KiB frames: measured with
//! `benches/bitswap.rs`, the Helia process, bound by its one JS thread, wrote one window
//! update per 16 KiB received (4444 socket writes for 64 MiB, 1415 from a Helia peer) and
//! spent a sixth of its time in them. A frame of [`SPLIT_SEND_SIZE`] bytes and its 12-byte
//! header fill exactly one Noise message (65,535 bytes with its 16-byte tag), so a frame
//! costs the receiver one decryption too. go-yamux and js yamux send 64 KiB frames as well;
//! the receiver's window still bounds what is in flight, so nothing else changes.
//!
//! `libp2p-yamux` keeps its `yamux::Config` private, hence this small adapter of
//! `yamux::Connection` to libp2p's [`StreamMuxer`]; it speaks the same `/yamux/1.0.0`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::{io, iter};

use futures::future;
use futures::io::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};

/// Largest payload of a data frame we send: a Noise message holds 65,535 bytes, 16 of them
/// its tag, and the frame's header takes 12.
pub(crate) const SPLIT_SEND_SIZE: usize = 65_535 - 16 - 12;

/// Inbound streams kept while libp2p drives the connection but does not take them yet;
/// more are dropped (yamux resets them), as `libp2p-yamux` does. This is rust-yamux's ACK
/// backlog: a peer running it opens no more streams until we acknowledge some.
const MAX_WAITING_INBOUND: usize = 256;

/// The multiplexer upgrade: yamux with [`SPLIT_SEND_SIZE`] frames.
#[derive(Debug, Clone)]
pub(crate) struct Config(yamux::Config);

impl Config {
    /// At most `max_streams` streams at once per connection.
    pub(crate) fn new(max_streams: usize) -> Self {
        let mut config = yamux::Config::default();
        config.set_max_num_streams(max_streams);
        config.set_split_send_size(SPLIT_SEND_SIZE);
        Self(config)
    }
}

impl UpgradeInfo for Config {
    type Info = &'static str;
    type InfoIter = iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        iter::once("/yamux/1.0.0")
    }
}

impl<C> InboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = future::Ready<Result<Muxer<C>, io::Error>>;

    fn upgrade_inbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(io, self.0, yamux::Mode::Server)))
    }
}

impl<C> OutboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = future::Ready<Result<Muxer<C>, io::Error>>;

    fn upgrade_outbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(io, self.0, yamux::Mode::Client)))
    }
}

/// One yamux connection as libp2p's [`StreamMuxer`].
pub(crate) struct Muxer<C> {
    connection: yamux::Connection<C>,
    /// Inbound streams that came while [`StreamMuxer::poll`] drove the connection.
    waiting: VecDeque<yamux::Stream>,
    /// The task waiting in [`StreamMuxer::poll_inbound`].
    inbound_waker: Option<Waker>,
}

impl<C> Muxer<C>
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    fn new(io: C, config: yamux::Config, mode: yamux::Mode) -> Self {
        Self {
            connection: yamux::Connection::new(io, config, mode),
            waiting: VecDeque::new(),
            inbound_waker: None,
        }
    }
}

impl<C> StreamMuxer for Muxer<C>
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Substream = yamux::Stream;
    type Error = yamux::ConnectionError;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        if let Some(stream) = this.waiting.pop_front() {
            return Poll::Ready(Ok(stream));
        }
        match this.connection.poll_next_inbound(cx) {
            Poll::Ready(Some(result)) => Poll::Ready(result),
            Poll::Ready(None) => Poll::Ready(Err(yamux::ConnectionError::Closed)),
            Poll::Pending => {
                this.inbound_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        self.get_mut().connection.poll_new_outbound(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().connection.poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        let this = self.get_mut();
        loop {
            match this.connection.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(stream))) => {
                    if this.waiting.len() < MAX_WAITING_INBOUND {
                        this.waiting.push_back(stream);
                        match this.inbound_waker.take() {
                            Some(waker) => waker.wake(),
                            None => cx.waker().wake_by_ref(),
                        }
                    } else {
                        tracing::debug!("yamux: an inbound stream dropped, too many waiting");
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Err(yamux::ConnectionError::Closed)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::{AsyncReadExt as _, AsyncWriteExt as _};
    use libp2p::core::muxing::StreamMuxerExt as _;
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt as _};

    use super::*;

    /// A socket that keeps a copy of what it writes.
    struct Recorded {
        io: Compat<tokio::io::DuplexStream>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl AsyncRead for Recorded {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Recorded {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = futures::ready!(Pin::new(&mut self.io).poll_write(cx, buf))?;
            if let Ok(mut written) = self.written.lock() {
                written.extend_from_slice(&buf[..n]);
            }
            Poll::Ready(Ok(n))
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_close(cx)
        }
    }

    /// The payload lengths of the data frames in a yamux byte stream.
    fn data_frames(mut bytes: &[u8]) -> Vec<usize> {
        let mut frames = Vec::new();
        while bytes.len() >= 12 {
            let kind = bytes[1];
            let len = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
            bytes = &bytes[12..];
            if kind == 0 {
                frames.push(len);
                bytes = &bytes[len.min(bytes.len())..];
            }
        }
        frames
    }

    #[tokio::test]
    async fn data_goes_out_in_frames_of_the_split_size() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let written = Arc::new(Mutex::new(Vec::new()));
        let client_io = Recorded {
            io: a.compat(),
            written: Arc::clone(&written),
        };
        let config = Config::new(16);
        let mut client = config
            .clone()
            .upgrade_outbound(client_io, "")
            .await
            .unwrap();
        let mut server = config.upgrade_inbound(b.compat(), "").await.unwrap();
        let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();

        let (done, finished) = futures::channel::oneshot::channel();

        // Each side drives its connection until its part is over; the sender's drive
        // continues until the receiver has read everything.
        let send = async {
            let mut stream = futures::future::poll_fn(|cx| client.poll_outbound_unpin(cx))
                .await
                .unwrap();
            let drive = futures::future::poll_fn(|cx| {
                let _ = client.poll_unpin(cx);
                Poll::<()>::Pending
            });
            let write = async {
                stream.write_all(&payload).await.unwrap();
                stream.close().await.unwrap();
                finished.await.unwrap()
            };
            futures::pin_mut!(drive, write);
            match futures::future::select(drive, write).await {
                futures::future::Either::Right((got, _)) => got,
                futures::future::Either::Left(((), _)) => Vec::new(),
            }
        };
        let receive = async {
            let mut stream = futures::future::poll_fn(|cx| server.poll_inbound_unpin(cx))
                .await
                .unwrap();
            let drive = futures::future::poll_fn(|cx| {
                let _ = server.poll_unpin(cx);
                Poll::<()>::Pending
            });
            let read = async {
                let mut got = Vec::new();
                stream.read_to_end(&mut got).await.unwrap();
                let _ = done.send(got);
            };
            futures::pin_mut!(drive, read);
            futures::future::select(drive, read).await;
        };
        let (got, ()) = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            futures::join!(send, receive)
        })
        .await
        .unwrap();
        assert_eq!(got, payload);

        let frames = data_frames(&written.lock().unwrap());
        assert_eq!(frames.iter().sum::<usize>(), payload.len());
        assert_eq!(frames.iter().max(), Some(&SPLIT_SEND_SIZE));
    }
}
