//! Copying bytes both ways between a tunnel and a local connection.

use std::{
    io,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The size of each of the two copy buffers of [`pipe`], in bytes.
pub const PIPE_BUFFER_SIZE: usize = 256 * 1024;

/// Copies bytes both ways between `a` and `b` until both directions are finished, and returns
/// (bytes copied from `a` to `b`, bytes copied from `b` to `a`).
///
/// When one side reaches EOF, the write side of the other is shut down (a half-close) while the
/// opposite direction keeps flowing. Each direction uses its own [`PIPE_BUFFER_SIZE`] buffer and
/// writes are flushed whenever the reading side has nothing more for the moment. The first I/O
/// error ends both directions.
pub async fn pipe<A, B>(mut a: A, mut b: B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, PIPE_BUFFER_SIZE, PIPE_BUFFER_SIZE)
        .await
}

/// Wraps an I/O object and adds the bytes read and written to two counters, as they pass.
pub(crate) struct Counted<'a, T> {
    pub(crate) inner: T,
    pub(crate) read: &'a AtomicU64,
    pub(crate) written: &'a AtomicU64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            self.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn pipes_both_ways_with_half_close() {
        let (mut left, a) = tokio::io::duplex(1024);
        let (b, mut right) = tokio::io::duplex(1024);
        let task = tokio::spawn(pipe(a, b));

        left.write_all(b"hello").await.ok();
        left.shutdown().await.ok();
        let mut got = Vec::new();
        right.read_to_end(&mut got).await.ok();
        assert_eq!(got, b"hello");

        // The other direction still flows after the half-close.
        right.write_all(b"world!").await.ok();
        right.shutdown().await.ok();
        let mut got = Vec::new();
        left.read_to_end(&mut got).await.ok();
        assert_eq!(got, b"world!");

        assert_eq!(task.await.ok().and_then(Result::ok), Some((5, 6)));
    }

    #[tokio::test]
    async fn counts_bytes() {
        let read = AtomicU64::new(0);
        let written = AtomicU64::new(0);
        let (mut other, inner) = tokio::io::duplex(64);
        let mut counted = Counted {
            inner,
            read: &read,
            written: &written,
        };
        other.write_all(b"abc").await.ok();
        let mut buf = [0u8; 3];
        counted.read_exact(&mut buf).await.ok();
        counted.write_all(b"hello").await.ok();
        assert_eq!(read.load(Ordering::Relaxed), 3);
        assert_eq!(written.load(Ordering::Relaxed), 5);
    }
}
