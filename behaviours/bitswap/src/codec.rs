//! Bitswap messages: the protobuf types (hand-written `prost` derives, no build-time protoc),
//! CID prefixes, and the varint length-prefixed framing.
//!
//! Everything here is a plain function over bytes or a generic reader/writer: no swarm, no
//! task, no clock. [`decode`] never panics, whatever the bytes.

use bytes::{BufMut, Bytes, BytesMut};
use cid::Cid;
use futures::{AsyncRead, AsyncReadExt};
use prost::Message as _;

/// Largest message body accepted or sent (the limit of every Bitswap implementation).
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// Multihash code of sha2-256, the only hash whose blocks are verified and served.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of the identity "hash" (the data is the digest): never wanted.
pub const IDENTITY: u64 = 0x00;
/// Multicodec of dag-pb (the codec of every CIDv0).
pub const DAG_PB: u64 = 0x70;

/// One Bitswap message (`message.proto` of the Bitswap spec).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// What the sender wants (always set when we send: old kubo fails without it).
    #[prost(message, optional, tag = "1")]
    pub wantlist: Option<Wantlist>,
    /// Blocks of Bitswap 1.0.0: raw bytes, CIDv0 implied.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub blocks: Vec<Bytes>,
    /// Blocks of Bitswap 1.1.0+: a CID prefix and the bytes.
    #[prost(message, repeated, tag = "3")]
    pub payload: Vec<Block>,
    /// Have / dont-have answers (1.2.0).
    #[prost(message, repeated, tag = "4")]
    pub block_presences: Vec<BlockPresence>,
    /// Bytes the sender still has queued for the receiver (informational).
    #[prost(int32, tag = "5")]
    pub pending_bytes: i32,
}

/// The wantlist of a [`Message`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Wantlist {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
    /// Whether this is the sender's whole wantlist (replacing the previous one).
    #[prost(bool, tag = "2")]
    pub full: bool,
}

/// One wantlist entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// The binary CID wanted.
    #[prost(bytes = "bytes", tag = "1")]
    pub block: Bytes,
    #[prost(int32, tag = "2")]
    pub priority: i32,
    /// Withdraws an earlier want of `block`.
    #[prost(bool, tag = "3")]
    pub cancel: bool,
    /// 0 = block, 1 = have; see [`Entry::want_type`].
    #[prost(int32, tag = "4")]
    pub want_type: i32,
    /// Answer "dont-have" instead of staying silent.
    #[prost(bool, tag = "5")]
    pub send_dont_have: bool,
}

/// A block of Bitswap 1.1.0+.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Block {
    /// The CID prefix ([`Prefix`]): version, codec, hash code, digest length.
    #[prost(bytes = "bytes", tag = "1")]
    pub prefix: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub data: Bytes,
}

/// A have / dont-have answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockPresence {
    #[prost(bytes = "bytes", tag = "1")]
    pub cid: Bytes,
    /// 0 = have, 1 = dont-have; see [`BlockPresence::presence`].
    #[prost(int32, tag = "2")]
    pub r#type: i32,
}

/// What a wantlist entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WantType {
    /// The block itself.
    Block,
    /// Only whether the peer has it.
    Have,
    /// A newer peer's type, kept as it was on the wire.
    Unknown(i32),
}

impl From<i32> for WantType {
    fn from(v: i32) -> Self {
        match v {
            0 => Self::Block,
            1 => Self::Have,
            other => Self::Unknown(other),
        }
    }
}

impl From<WantType> for i32 {
    fn from(v: WantType) -> Self {
        match v {
            WantType::Block => 0,
            WantType::Have => 1,
            WantType::Unknown(other) => other,
        }
    }
}

/// A block presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Presence {
    Have,
    DontHave,
    /// A newer peer's type, kept as it was on the wire.
    Unknown(i32),
}

impl From<i32> for Presence {
    fn from(v: i32) -> Self {
        match v {
            0 => Self::Have,
            1 => Self::DontHave,
            other => Self::Unknown(other),
        }
    }
}

impl From<Presence> for i32 {
    fn from(v: Presence) -> Self {
        match v {
            Presence::Have => 0,
            Presence::DontHave => 1,
            Presence::Unknown(other) => other,
        }
    }
}

impl Entry {
    /// The entry's [`WantType`].
    pub fn want_type(&self) -> WantType {
        self.want_type.into()
    }
}

impl BlockPresence {
    /// The answer's [`Presence`].
    pub fn presence(&self) -> Presence {
        self.r#type.into()
    }
}

/// Why bytes are not a message, a prefix or a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message is larger than the limit.
    #[error("message of {len} bytes is over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    /// Not protobuf of the Bitswap schema.
    #[error("not a bitswap message: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A CID prefix that is not four varints.
    #[error("malformed CID prefix")]
    BadPrefix,
    /// A hash other than sha2-256 with a 32-byte digest.
    #[error("unsupported hash {code:#x} ({len} bytes)")]
    UnsupportedHash { code: u64, len: u64 },
    /// A prefix or CID that does not make a CID.
    #[error("malformed CID")]
    BadCid,
}

/// Why reading a frame failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix is over the limit: the stream is dropped before reading the body.
    #[error("frame of {len} bytes is over the limit of {max}")]
    TooLarge { len: u64, max: usize },
    /// The length prefix is not a varint.
    #[error("malformed length prefix")]
    BadLength,
}

/// Decodes a message body (without its length prefix). Never panics.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    decode_bytes(Bytes::copy_from_slice(bytes))
}

/// [`decode`] without copying: block data are slices of `bytes`.
pub fn decode_bytes(bytes: Bytes) -> Result<Message, DecodeError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_SIZE,
        });
    }
    Ok(Message::decode(bytes)?)
}

/// Encodes `message` as one frame: varint length, then the protobuf body.
pub fn encode(message: &Message) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(len + 10);
    put_varint(&mut buf, len as u64);
    // `buf` grows as needed, so encoding cannot run out of room.
    let _ = message.encode(&mut buf);
    buf.freeze()
}

/// Encodes `message` as one frame in parts, so that block bytes are written without being
/// copied: the parts, concatenated, are the frame [`encode`] makes. The blocks' data are
/// parts of their own (the same `Bytes`); what comes between them (the length prefix, the
/// other fields, each block's prefix) is in small parts.
pub fn encode_parts(message: &Message) -> Vec<Bytes> {
    // Fields in tag order, as prost writes them: 1 and 2, the blocks (3), then 4 and 5.
    let before = Message {
        wantlist: message.wantlist.clone(),
        blocks: message.blocks.clone(),
        ..Message::default()
    };
    let after = Message {
        block_presences: message.block_presences.clone(),
        pending_bytes: message.pending_bytes,
        ..Message::default()
    };
    let mut heads = Vec::with_capacity(message.payload.len());
    let mut body_len = (before.encoded_len() + after.encoded_len()) as u64;
    for block in &message.payload {
        let data_len = block.data.len() as u64;
        let mut inner = BytesMut::new();
        if !block.prefix.is_empty() {
            put_varint(&mut inner, 0x0a); // Block.prefix
            put_varint(&mut inner, block.prefix.len() as u64);
            inner.put_slice(&block.prefix);
        }
        if data_len > 0 {
            put_varint(&mut inner, 0x12); // Block.data
            put_varint(&mut inner, data_len);
        }
        let mut head = BytesMut::with_capacity(inner.len() + 12);
        put_varint(&mut head, 0x1a); // Message.payload
        put_varint(&mut head, inner.len() as u64 + data_len);
        head.put_slice(&inner);
        body_len += head.len() as u64 + data_len;
        heads.push(head);
    }
    let mut first = BytesMut::with_capacity(before.encoded_len() + 10);
    put_varint(&mut first, body_len);
    // `first` grows as needed, so encoding cannot run out of room.
    let _ = before.encode(&mut first);
    let mut parts = Vec::with_capacity(2 * message.payload.len() + 2);
    for (head, block) in heads.into_iter().zip(&message.payload) {
        first.put_slice(&head);
        parts.push(std::mem::take(&mut first).freeze());
        if !block.data.is_empty() {
            parts.push(block.data.clone());
        }
    }
    let _ = after.encode(&mut first);
    if !first.is_empty() {
        parts.push(first.freeze());
    }
    parts
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Reads an unsigned varint from the front of `bytes`: the value and the bytes left.
pub fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        let part = u64::from(b & 0x7f);
        if i == 9 && part > 1 {
            return None;
        }
        value |= part << (7 * i);
        if b & 0x80 == 0 {
            return bytes.get(i + 1..).map(|rest| (value, rest));
        }
    }
    None
}

/// Reads one frame body of at most `max` bytes; `None` at a clean end of stream (before the
/// first byte of a frame).
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Bytes>, ReadError> {
    let mut len = 0u64;
    let mut i = 0;
    loop {
        let mut byte = [0u8; 1];
        let n = reader.read(&mut byte).await?;
        if n == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        let part = u64::from(byte[0] & 0x7f);
        if i == 9 && part > 1 {
            return Err(ReadError::BadLength);
        }
        len |= part << (7 * i);
        i += 1;
        if byte[0] & 0x80 == 0 {
            break;
        }
        if i >= 10 {
            return Err(ReadError::BadLength);
        }
    }
    if len > max as u64 {
        return Err(ReadError::TooLarge { len, max });
    }
    let mut body = BytesMut::zeroed(len as usize);
    reader.read_exact(&mut body).await?;
    Ok(Some(body.freeze()))
}

/// A CID prefix: everything of a CID but the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub version: u64,
    pub codec: u64,
    pub hash: u64,
    pub digest_len: u64,
}

impl Prefix {
    /// The prefix of `cid`.
    pub fn of(cid: &Cid) -> Self {
        Self {
            version: cid.version().into(),
            codec: cid.codec(),
            hash: cid.hash().code(),
            digest_len: u64::from(cid.hash().size()),
        }
    }

    /// The four varints.
    pub fn to_bytes(self) -> Bytes {
        let mut buf = BytesMut::with_capacity(8);
        put_varint(&mut buf, self.version);
        put_varint(&mut buf, self.codec);
        put_varint(&mut buf, self.hash);
        put_varint(&mut buf, self.digest_len);
        buf.freeze()
    }

    /// Reads four varints (anything after them is ignored, as other implementations do).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (version, rest) = take_varint(bytes).ok_or(DecodeError::BadPrefix)?;
        let (codec, rest) = take_varint(rest).ok_or(DecodeError::BadPrefix)?;
        let (hash, rest) = take_varint(rest).ok_or(DecodeError::BadPrefix)?;
        let (digest_len, _) = take_varint(rest).ok_or(DecodeError::BadPrefix)?;
        Ok(Self {
            version,
            codec,
            hash,
            digest_len,
        })
    }

    /// The CID of `data` under this prefix: sha2-256 only.
    pub fn cid_of(&self, data: &[u8]) -> Result<Cid, DecodeError> {
        use sha2::Digest;
        if self.hash != SHA2_256 || self.digest_len != 32 {
            return Err(DecodeError::UnsupportedHash {
                code: self.hash,
                len: self.digest_len,
            });
        }
        let digest = sha2::Sha256::digest(data);
        let mh = cid::multihash::Multihash::<64>::wrap(SHA2_256, &digest)
            .map_err(|_| DecodeError::BadCid)?;
        match self.version {
            0 if self.codec == DAG_PB => Ok(Cid::new_v0(mh).map_err(|_| DecodeError::BadCid)?),
            1 => Ok(Cid::new_v1(self.codec, mh)),
            _ => Err(DecodeError::BadCid),
        }
    }
}

#[cfg(test)]
mod tests;
