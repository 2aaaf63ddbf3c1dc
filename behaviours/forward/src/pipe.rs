//! Copying bytes both ways between a tunnel and a local connection.

use std::{
    io,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

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

/// Like [`pipe`], but ends both directions with an [`io::ErrorKind::TimedOut`] error once no
/// byte has passed in either direction for `idle` (`None`: no limit).
///
/// Any byte read from or written to either side counts as activity. When the limit is reached,
/// both `a` and `b` are dropped (closing them), so an idle tunnel never holds its two
/// connections for longer than `idle`.
pub async fn pipe_with_idle_timeout<A, B>(
    a: A,
    b: B,
    idle: Option<Duration>,
) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let Some(idle) = idle else {
        return pipe(a, b).await;
    };
    let activity = Activity::new();
    let copy = pipe(
        Watched {
            inner: a,
            activity: &activity,
        },
        Watched {
            inner: b,
            activity: &activity,
        },
    );
    tokio::select! {
        result = copy => result,
        () = activity.idle_for(idle) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no data in either direction for {}s", idle.as_secs_f64()),
        )),
    }
}

/// When bytes last passed, in milliseconds since `base`.
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Returns once nothing has passed for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = self.base + last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Wraps an I/O object and records in an [`Activity`] every time bytes pass.
struct Watched<'a, T> {
    inner: T,
    activity: &'a Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll
            && n > 0
        {
            self.activity.touch();
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
    async fn idle_timeout_ends_only_a_silent_pipe() {
        let idle = Duration::from_millis(150);
        let (mut left, a) = tokio::io::duplex(1024);
        let (b, mut right) = tokio::io::duplex(1024);
        let started = Instant::now();
        let task = tokio::spawn(pipe_with_idle_timeout(a, b, Some(idle)));

        // Bytes every 50 ms keep it open for well over the idle time...
        let mut buf = [0u8; 1];
        while started.elapsed() < idle * 3 {
            left.write_all(b"x").await.ok();
            right.read_exact(&mut buf).await.ok();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!task.is_finished());

        // ...then silence ends it, and both ends see it closed.
        let result = tokio::time::timeout(Duration::from_secs(5), task).await;
        let error = match result {
            Ok(Ok(Err(e))) => e,
            other => panic!("expected an idle error, got {other:?}"),
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= idle * 3);
        let mut rest = Vec::new();
        assert_eq!(left.read_to_end(&mut rest).await.ok(), Some(0));
        assert_eq!(right.read_to_end(&mut rest).await.ok(), Some(0));

        // Without a limit, a silent pipe stays open.
        let (_left, a) = tokio::io::duplex(1024);
        let (b, _right) = tokio::io::duplex(1024);
        let open = pipe_with_idle_timeout(a, b, None);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), open)
                .await
                .is_err()
        );
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
