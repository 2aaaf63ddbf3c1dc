//! The [`Behaviour`]: request-response with method dispatch on top.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    task::{Context, Poll},
};

use futures::{
    FutureExt, StreamExt,
    future::{AbortHandle, Aborted, BoxFuture},
    stream::FuturesUnordered,
};
use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    request_response::{
        self as rr, InboundRequestId, OutboundRequestId, ProtocolSupport, ResponseChannel,
    },
    swarm::{
        ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm,
    },
};
use serde_json::Value;

use crate::{
    CallError, Config, ErrorCode, InboundFailure, Methods, RpcError,
    codec::{Codec, Request, Response, encoded_len},
    methods::{method_not_found, run},
};

type Inner = rr::Behaviour<Codec>;

/// Longest prefix of a peer-chosen method name that is copied into events and log lines.
const MAX_UNTRUSTED_NAME_LEN: usize = 128;

/// `s` cut to at most [`MAX_UNTRUSTED_NAME_LEN`] bytes, on a character boundary.
pub(crate) fn truncated(s: &str) -> &str {
    if s.len() <= MAX_UNTRUSTED_NAME_LEN {
        return s;
    }
    let mut end = MAX_UNTRUSTED_NAME_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Events of the RPC [`Behaviour`].
#[derive(Debug)]
pub enum Event {
    /// Outcome of a [`Behaviour::call`], exactly one per call that returned `Ok`: the
    /// peer's answer ([`CallError::Remote`] when it is an error), or why there is none
    /// (timeout, dial failure, closed connection...).
    OutboundResult {
        /// The peer that was called.
        peer: PeerId,
        /// The id [`Behaviour::call`] returned.
        request_id: OutboundRequestId,
        /// The method's result, or why there is none.
        result: Result<Value, CallError>,
    },
    /// An inbound request was answered: the response was written to the stream.
    InboundAnswered {
        /// The calling peer.
        peer: PeerId,
        /// The method called. For an unknown method this is the name the peer sent, cut to
        /// 128 bytes.
        method: String,
        /// Whether the answer was a result (`true`) or an error (`false`).
        ok: bool,
    },
    /// An inbound request was received but could not be answered (timeout, connection closed,
    /// stream error while writing the response...).
    ///
    /// Requests that cannot even be read (malformed or oversized bytes) are dropped by
    /// libp2p-request-response before they reach this behaviour, which only logs them at debug
    /// level; they produce no event.
    InboundFailure {
        /// The calling peer.
        peer: PeerId,
        /// What went wrong.
        error: InboundFailure,
    },
}

/// What we remember about an inbound request until request-response reports its end.
struct InboundEntry {
    method: String,
    /// Whether the response is (or will be) a result rather than an error.
    ok: bool,
    /// Cancels the handler while it is still running.
    abort: Option<AbortHandle>,
}

/// A handler future that finished (or was cancelled), with the channel to answer on.
struct Completed {
    request_id: InboundRequestId,
    channel: ResponseChannel<Response>,
    outcome: Result<Result<Value, RpcError>, Aborted>,
}

/// JSON RPC on [`PROTOCOL_NAME`](crate::PROTOCOL_NAME) (or [`Config::protocol`]).
///
/// Outbound: [`Behaviour::call`] sends a request and an [`Event::OutboundResult`] reports its
/// outcome. Inbound: requests are dispatched to the handlers in [`Methods`], which run
/// concurrently inside this behaviour's `poll` (no executor needed); at most
/// [`Config::max_concurrent_inbound`] of them at a time, the rest are answered
/// [`ErrorCode::Busy`]. A handler still running when its request times out or its connection
/// closes is cancelled (dropped).
pub struct Behaviour {
    inner: Inner,
    methods: Methods,
    config: Config,
    /// Running handlers.
    in_flight: FuturesUnordered<BoxFuture<'static, Completed>>,
    /// Inbound requests handed to us by request-response and not yet finished.
    inbound: HashMap<InboundRequestId, InboundEntry>,
    pending_events: VecDeque<Event>,
}

/// Decides whether a peer may call a method, before any handler runs: `Err` is sent back as
/// the answer (usually [`ErrorCode::Forbidden`]). Set with [`Config::with_authorizer`].
pub type Authorizer = Arc<dyn Fn(&PeerId, &str) -> Result<(), RpcError> + Send + Sync>;

impl Behaviour {
    /// A behaviour answering with `methods` and calling out under `config`.
    pub fn new(config: Config, methods: Methods) -> Self {
        let codec = Codec::new(config.max_request_size(), config.max_response_size());
        let rr_config = rr::Config::default()
            .with_request_timeout(config.request_timeout())
            .with_max_concurrent_streams(config.max_concurrent_streams());
        let inner = rr::Behaviour::with_codec(
            codec,
            [(config.protocol().clone(), ProtocolSupport::Full)],
            rr_config,
        );
        Self {
            inner,
            methods,
            config,
            in_flight: FuturesUnordered::new(),
            inbound: HashMap::new(),
            pending_events: VecDeque::new(),
        }
    }

    /// The method registry inbound requests are dispatched to.
    pub fn methods(&self) -> &Methods {
        &self.methods
    }

    /// The configuration this behaviour was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of inbound handlers currently running.
    pub fn inbound_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Calls `method` on `peer` with `params`.
    ///
    /// If the peer is not connected, it is dialed with the addresses the swarm knows for it.
    /// The outcome arrives as exactly one [`Event::OutboundResult`] with the returned id.
    ///
    /// Fails immediately, sending nothing, with [`CallError::RequestTooLarge`] if the encoded
    /// request exceeds [`Config::max_request_size`].
    pub fn call(
        &mut self,
        peer: &PeerId,
        method: &str,
        params: Value,
    ) -> Result<OutboundRequestId, CallError> {
        let request = Request {
            method: method.to_owned(),
            params,
        };
        let size = encoded_len(&request).map_err(|e| CallError::Io(e.to_string()))?;
        let max = self.config.max_request_size();
        if size > max {
            return Err(CallError::RequestTooLarge { size, max });
        }
        Ok(self.inner.send_request(peer, request))
    }

    fn on_inner_event(&mut self, event: rr::Event<Request, Response>) {
        match event {
            rr::Event::Message {
                peer,
                message:
                    rr::Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => self.on_request(peer, request_id, request, channel),
            rr::Event::Message {
                peer,
                message:
                    rr::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => self.pending_events.push_back(Event::OutboundResult {
                peer,
                request_id,
                result: response.into_result().map_err(CallError::Remote),
            }),
            rr::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let error = self.call_error(error);
                self.pending_events.push_back(Event::OutboundResult {
                    peer,
                    request_id,
                    result: Err(error),
                });
            }
            rr::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let method = match self.inbound.remove(&request_id) {
                    Some(entry) => {
                        if let Some(abort) = entry.abort {
                            abort.abort();
                        }
                        entry.method
                    }
                    None => String::new(),
                };
                tracing::debug!(%peer, %method, %error, "inbound RPC request failed");
                self.pending_events.push_back(Event::InboundFailure {
                    peer,
                    error: InboundFailure::from(error),
                });
            }
            rr::Event::ResponseSent {
                peer, request_id, ..
            } => match self.inbound.remove(&request_id) {
                Some(entry) => self.pending_events.push_back(Event::InboundAnswered {
                    peer,
                    method: entry.method,
                    ok: entry.ok,
                }),
                None => {
                    tracing::debug!(%peer, %request_id, "response sent for an unknown request");
                }
            },
        }
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
        if let Some(authorize) = self.config.authorizer()
            && let Err(error) = authorize(&peer, &request.method)
        {
            tracing::debug!(%peer, method = %truncated(&request.method), "RPC call refused: {error}");
            let method = truncated(&request.method).to_owned();
            self.respond(request_id, method, channel, Err(error));
            return;
        }
        let Some(handler) = self.methods.lookup(&request.method) else {
            tracing::debug!(%peer, method = %truncated(&request.method), "unknown RPC method");
            let error = method_not_found(&request.method);
            let method = truncated(&request.method).to_owned();
            self.respond(request_id, method, channel, Err(error));
            return;
        };
        if self.in_flight.len() >= self.config.max_concurrent_inbound() {
            tracing::debug!(%peer, method = %request.method, "too many RPC requests in flight");
            let error = RpcError::new(ErrorCode::Busy, "too many requests in flight");
            self.respond(request_id, request.method, channel, Err(error));
            return;
        }
        let future = run(&handler, peer, &request.method, request.params);
        let (future, abort) = futures::future::abortable(future);
        self.inbound.insert(
            request_id,
            InboundEntry {
                method: request.method,
                ok: false,
                abort: Some(abort),
            },
        );
        self.in_flight.push(
            async move {
                Completed {
                    request_id,
                    channel,
                    outcome: future.await,
                }
            }
            .boxed(),
        );
    }

    fn on_completed(&mut self, completed: Completed) {
        let Completed {
            request_id,
            channel,
            outcome,
        } = completed;
        // Cancelled: request-response already reported the failure and we forgot the request.
        let Ok(result) = outcome else { return };
        let (response, ok) = self.checked_response(result);
        let Some(entry) = self.inbound.get_mut(&request_id) else {
            return;
        };
        entry.ok = ok;
        entry.abort = None;
        if self.inner.send_response(channel, response).is_err() {
            // Timed out or connection gone; request-response reports that as a failure.
            tracing::debug!(%request_id, "RPC response channel closed before the answer");
        }
    }

    /// Answers a request at once, without running a handler.
    fn respond(
        &mut self,
        request_id: InboundRequestId,
        method: String,
        channel: ResponseChannel<Response>,
        result: Result<Value, RpcError>,
    ) {
        let (response, ok) = self.checked_response(result);
        self.inbound.insert(
            request_id,
            InboundEntry {
                method,
                ok,
                abort: None,
            },
        );
        if self.inner.send_response(channel, response).is_err() {
            tracing::debug!(%request_id, "RPC response channel closed before the answer");
        }
    }

    /// The response for `result`, or a [`ErrorCode::TooLarge`] error if it would exceed
    /// [`Config::max_response_size`]; with whether it is a result.
    fn checked_response(&self, result: Result<Value, RpcError>) -> (Response, bool) {
        let ok = result.is_ok();
        let response = Response::from(result);
        let max = self.config.max_response_size();
        match encoded_len(&response) {
            Ok(len) if len <= max => (response, ok),
            Ok(len) => {
                let error = RpcError::new(
                    ErrorCode::TooLarge,
                    format!("response of {len} bytes exceeds the limit of {max} bytes"),
                );
                (Response::Error(error), false)
            }
            Err(e) => {
                let error = RpcError::internal(format!("response cannot be encoded: {e}"));
                (Response::Error(error), false)
            }
        }
    }

    fn call_error(&self, failure: rr::OutboundFailure) -> CallError {
        match failure {
            rr::OutboundFailure::DialFailure => CallError::DialFailure,
            rr::OutboundFailure::Timeout => CallError::Timeout,
            rr::OutboundFailure::ConnectionClosed => CallError::ConnectionClosed,
            rr::OutboundFailure::UnsupportedProtocols => {
                CallError::UnsupportedProtocol(self.config.protocol().to_string())
            }
            rr::OutboundFailure::Io(e) => CallError::Io(e.to_string()),
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = THandler<Inner>;
    type ToSwarm = Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(event) = self.pending_events.pop_front() {
                return Poll::Ready(ToSwarm::GenerateEvent(event));
            }

            // Drive the handlers; each poll registers the waker, so a handler becoming ready
            // wakes the swarm task again.
            while let Poll::Ready(Some(completed)) = self.in_flight.poll_next_unpin(cx) {
                self.on_completed(completed);
            }

            match self.inner.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(event)) => {
                    // May start a handler: loop so that it is polled (and registers its waker)
                    // before we return.
                    self.on_inner_event(event);
                }
                Poll::Ready(other) => {
                    // The one place a panic marks the impossible: `map_out` wants a function
                    // for `GenerateEvent`, which the arm above took (no peer input gets here).
                    return Poll::Ready(
                        other.map_out(|_| unreachable!("GenerateEvent is matched above")),
                    );
                }
                Poll::Pending => {
                    if self.pending_events.is_empty() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_respects_char_boundaries() {
        assert_eq!(truncated("echo"), "echo");
        let long = "é".repeat(100); // 200 bytes
        let cut = truncated(&long);
        assert!(cut.len() <= MAX_UNTRUSTED_NAME_LEN);
        assert_eq!(cut, "é".repeat(64));
    }
}
