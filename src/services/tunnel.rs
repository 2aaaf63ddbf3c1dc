//! [`Tunnel`]: either end of a tunnel to a service, as one `AsyncRead + AsyncWrite`.

use std::pin::Pin;
use std::task::{Context, Poll};

use libp2p::PeerId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Either end of a tunnel: a libp2p stream to a remote provider, or a direct connection when
/// this node provides the service itself.
pub enum Tunnel {
    Remote(mcc_forward::Tunnel),
    Local(TcpStream),
}

impl Tunnel {
    /// The provider at the other end (`None`: this node).
    pub fn peer(&self) -> Option<PeerId> {
        match self {
            Tunnel::Remote(t) => Some(t.peer()),
            Tunnel::Local(_) => None,
        }
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Tunnel::Remote(t) => Pin::new(t).poll_read(cx, buf),
            Tunnel::Local(t) => Pin::new(t).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Tunnel::Remote(t) => Pin::new(t).poll_write(cx, buf),
            Tunnel::Local(t) => Pin::new(t).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Tunnel::Remote(t) => Pin::new(t).poll_flush(cx),
            Tunnel::Local(t) => Pin::new(t).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Tunnel::Remote(t) => Pin::new(t).poll_shutdown(cx),
            Tunnel::Local(t) => Pin::new(t).poll_shutdown(cx),
        }
    }
}
