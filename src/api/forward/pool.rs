//! [`Upstreams`]: the forward's HTTP/1.1 connections to services (each over its own tunnel),
//! kept idle per service after an answer and reused by the next request; and [`Answer`], the
//! body of an upstream's answer as the client gets it, which gives its connection back when
//! read to the end and fails once the upstream is silent for too long.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use tokio::time::{Instant, Sleep};

/// How long a connection may wait idle in the pool. Upstreams close their own idle
/// connections sooner or later; one closed meanwhile is noticed and skipped, and a request
/// that finds it closed while being sent is sent again on a fresh one when that is safe.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle connections kept per service; more are closed.
const MAX_IDLE_PER_SERVICE: usize = 8;

/// Services with idle connections; the connections of further services are closed.
const MAX_SERVICES: usize = 256;

/// How long a connection given back may take to become ready for the next request (it
/// only has to finish reading the end of its last answer).
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// Default of [`Upstreams::timeout`].
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The idle upstream connections of one forward listener, by service name.
pub(crate) struct Upstreams {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    timeout: Duration,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

impl Upstreams {
    /// A pool whose requests wait at most `timeout` for an answer, and at most `timeout`
    /// between two pieces of an answer's body.
    pub(crate) fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(HashMap::new()),
            timeout,
        })
    }

    /// How long a request waits for the tunnel and the answer's head, and an answer's body
    /// for its next bytes.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Idle>>> {
        // Nothing panics while holding it; a poisoned map is still consistent.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection to `service` ready for a request, the most recently used first.
    /// A connection given back a moment ago may still be finishing its last answer (or
    /// closing, if the service closes after each one): each is given [`READY_TIMEOUT`].
    pub(super) async fn take(&self, service: &str) -> Option<SendRequest<Body>> {
        loop {
            let mut c = {
                let mut idle = self.lock();
                let list = idle.get_mut(service)?;
                let c = list.pop();
                if list.is_empty() {
                    idle.remove(service);
                }
                c?
            };
            if c.since.elapsed() >= IDLE_TIMEOUT {
                continue;
            }
            if let Ok(Ok(())) = tokio::time::timeout(READY_TIMEOUT, c.sender.ready()).await {
                return Some(c.sender);
            }
        }
    }

    /// Gives a connection back after its answer was read to the end; [`Self::take`] skips it
    /// if the service closes it. Closed after [`IDLE_TIMEOUT`] unused.
    fn give_back(self: &Arc<Self>, service: String, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        {
            let mut idle = self.lock();
            if idle.len() >= MAX_SERVICES && !idle.contains_key(&service) {
                return;
            }
            let list = idle.entry(service.clone()).or_default();
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
            if list.len() > MAX_IDLE_PER_SERVICE {
                list.remove(0);
            }
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let this = Arc::clone(self);
            rt.spawn(async move {
                tokio::time::sleep(IDLE_TIMEOUT).await;
                this.sweep(&service);
            });
        }
    }

    /// Closes the connections to `service` idle for [`IDLE_TIMEOUT`] or closed by the upstream.
    fn sweep(&self, service: &str) {
        let mut idle = self.lock();
        if let Some(list) = idle.get_mut(service) {
            list.retain(|c| c.since.elapsed() < IDLE_TIMEOUT && !c.sender.is_closed());
            if list.is_empty() {
                idle.remove(service);
            }
        }
    }
}

/// An upstream's answer body on its way to the client: fails with [`io::ErrorKind::TimedOut`]
/// when no byte came for the pool's timeout, and gives its connection back to the pool once
/// read to the end (a body dropped before its end closes the connection instead).
pub(super) struct Answer {
    body: Incoming,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    back: Option<(Arc<Upstreams>, String, SendRequest<Body>)>,
    done: bool,
}

impl Answer {
    pub(super) fn new(
        body: Incoming,
        pool: &Arc<Upstreams>,
        service: &str,
        sender: SendRequest<Body>,
    ) -> Self {
        let idle = pool.timeout();
        Self {
            body,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            back: Some((Arc::clone(pool), service.to_string(), sender)),
            done: false,
        }
    }
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = Instant::now() + this.idle;
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!("forwarded answer failed: {e}");
                Poll::Ready(Some(Err(io::Error::other(e))))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the service sent nothing for {}s", this.idle.as_secs_f64()),
                )))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if (self.done || self.body.is_end_stream())
            && let Some((pool, service, sender)) = self.back.take()
        {
            pool.give_back(service, sender);
        }
    }
}
