//! The opening side: [`open`] and [`Tunnel`].

use std::{
    fmt, io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use libp2p::PeerId;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt as _};

use crate::{OpenError, PROTOCOL_NAME, wire};

/// An open tunnel to a service of a remote peer.
///
/// Reads and writes go straight to the libp2p stream. Shutting down the write side
/// (`AsyncWriteExt::shutdown`) half-closes the tunnel: the remote service sees EOF while bytes
/// keep flowing back until it closes its side.
pub struct Tunnel {
    stream: Compat<libp2p::Stream>,
    peer: PeerId,
}

impl Tunnel {
    /// The peer that provides the service.
    pub fn peer(&self) -> PeerId {
        self.peer
    }
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnel").field("peer", &self.peer).finish()
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// How many times [`open`] tries when the provider drops the stream before answering.
const MAX_ATTEMPTS: u32 = 5;

/// Opens a tunnel to the service `service` of `peer`.
///
/// Checks the name with [`validate_name`](crate::validate_name) (nothing is sent for an invalid
/// name), opens a stream on [`PROTOCOL_NAME`] (dialing `peer` if not connected and its addresses
/// are known to the swarm), sends the request and waits for the answer. `timeout` bounds all of
/// it.
///
/// A stream that the provider closes before sending any answer byte is retried a few times (with
/// a short backoff, within `timeout`): nothing has happened on the provider's side then. With
/// mcc-streams that happens only beyond the provider's queue and holding room (see
/// `mcc_streams::Config`), or to a provider that drops streams itself.
pub async fn open(
    control: &mut mcc_streams::Control,
    peer: PeerId,
    service: &str,
    timeout: Duration,
) -> Result<Tunnel, OpenError> {
    wire::validate_name(service)?;
    let request = wire::encode_request(service);

    let handshake = async {
        let mut attempt = 1;
        loop {
            match try_open(control, peer, &request).await {
                Ok(stream) => return Ok(Tunnel { stream, peer }),
                Err(Failure::Dropped(e)) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(%peer, service, attempt, error = %e, "forward stream dropped, retrying");
                    tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                    attempt += 1;
                }
                Err(Failure::Dropped(e) | Failure::Final(e)) => return Err(e),
            }
        }
    };

    let result = tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or(Err(OpenError::Timeout));
    match &result {
        Ok(_) => tracing::debug!(%peer, service, "forward tunnel open"),
        Err(e) => tracing::debug!(%peer, service, error = %e, "cannot open forward tunnel"),
    }
    result
}

/// How one attempt of [`open`] failed.
enum Failure {
    /// The stream was closed before any byte of the answer: worth another try.
    Dropped(OpenError),
    /// Anything else.
    Final(OpenError),
}

/// Opens one stream, sends the request and reads the answer.
async fn try_open(
    control: &mut mcc_streams::Control,
    peer: PeerId,
    request: &[u8],
) -> Result<Compat<libp2p::Stream>, Failure> {
    let stream = control
        .open_stream(peer, PROTOCOL_NAME)
        .await
        .map_err(|e| Failure::Final(OpenError::Stream(e)))?;
    let mut stream = stream.compat();

    let dropped = |what: &str, e: &dyn fmt::Display| {
        Failure::Dropped(OpenError::Handshake(format!("{what}: {e}")))
    };
    stream
        .write_all(request)
        .await
        .map_err(|e| dropped("cannot send the request", &e))?;
    stream
        .flush()
        .await
        .map_err(|e| dropped("cannot send the request", &e))?;

    let mut status = [0u8; 1];
    match stream.read(&mut status).await {
        Ok(1) => {}
        Ok(_) => {
            return Err(Failure::Dropped(OpenError::Handshake(
                "the provider closed the stream before answering".into(),
            )));
        }
        Err(e) => return Err(dropped("cannot read the answer", &e)),
    }
    wire::read_answer_after(status[0], &mut stream)
        .await
        .map_err(Failure::Final)?;
    Ok(stream)
}
