//! The errors of a want and of an inbound stream.

use libp2p::PeerId;

use crate::codec::{DecodeError, ReadError};

/// Why a want ([`crate::Handle::want`]) got no answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WantError {
    /// No connection to the peer, or it closed before the answer.
    #[error("not connected to {0}")]
    NotConnected(PeerId),
    /// The peer does not speak Bitswap.
    #[error("{0} does not speak bitswap")]
    Unsupported(PeerId),
    /// We already have the most wants outstanding with this peer.
    #[error("{max} wants already outstanding with the peer")]
    TooManyWants { max: usize },
    /// No answer in time.
    #[error("no answer within the want timeout")]
    Timeout,
    /// The peer sent a block nobody wanted from it (or one that is not a valid block): its
    /// wants are failed and the caller should drop it.
    #[error("{0} sent a block that was not wanted")]
    WrongBlock(PeerId),
    /// Identity CIDs hold their data: they are never wanted.
    #[error("identity CIDs are never wanted")]
    Identity,
}

/// Why an inbound stream was dropped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// A frame could not be read (over the size limit, bad length, i/o).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A frame was not a Bitswap message.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}
