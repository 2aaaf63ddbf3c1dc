//! The upgrades of a stream: plain multistream-select negotiation, the stream itself as output.
//!
//! Outbound, [`Outbound`] proposes the protocol either alone or followed by [`SENTINEL`], a
//! protocol no peer supports. This matters when the swarm negotiates optimistically
//! (multistream-select `V1Lazy`, `libp2p::swarm::Config::with_substream_upgrade_protocol_override`):
//! a dialer then settles on the *last* protocol it proposes without waiting for the listener,
//! so a protocol proposed alone is sent together with the first bytes of the stream (one round
//! trip less), but a peer that does not support it only shows as a broken stream later. With
//! the sentinel behind it, the protocol is confirmed first as in `V1`, and a refusal ends in
//! the sentinel, which [`Outbound`] turns into [`Unsupported`]: the opener still gets a typed
//! [`OpenError::UnsupportedProtocol`](crate::OpenError::UnsupportedProtocol). Under plain `V1`
//! both forms behave the same (the sentinel costs one more line only when the protocol is
//! refused).

use std::convert::Infallible;
use std::future::{Ready, ready};

use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::{Stream, StreamProtocol};

/// Proposed after a protocol that must be confirmed before the stream is used.
pub const SENTINEL: StreamProtocol = StreamProtocol::new("/mcc/streams/unsupported");

/// Negotiates one of `protocols` and hands the stream on with the protocol chosen.
/// (Public only as the handler's upgrade type; not reachable by name.)
pub struct Upgrade {
    pub(crate) protocols: Vec<StreamProtocol>,
}

impl UpgradeInfo for Upgrade {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.protocols.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for Upgrade {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}

/// Negotiates `protocol` for an outbound stream; `confirm` puts [`SENTINEL`] behind it.
/// (Public only as the handler's upgrade type; not reachable by name.)
pub struct Outbound {
    pub(crate) protocol: StreamProtocol,
    pub(crate) confirm: bool,
}

/// The peer refused the protocol (negotiation ended in [`SENTINEL`]).
#[derive(Debug)]
pub struct Unsupported;

impl UpgradeInfo for Outbound {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        let mut protocols = vec![self.protocol.clone()];
        if self.confirm {
            protocols.push(SENTINEL);
        }
        protocols.into_iter()
    }
}

impl OutboundUpgrade<Stream> for Outbound {
    type Output = (Stream, StreamProtocol);
    type Error = Unsupported;
    type Future = Ready<Result<Self::Output, Unsupported>>;

    fn upgrade_outbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        if protocol == SENTINEL {
            return ready(Err(Unsupported));
        }
        ready(Ok((stream, protocol)))
    }
}
