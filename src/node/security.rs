//! The security upgrades of TCP and relayed connections: TLS 1.3 ([`Tls`], AES-GCM first, which
//! this CPU class runs in hardware) offered before Noise, so two mcc nodes talk TLS while a peer
//! that only speaks Noise (js-libp2p, Helia) still connects.
//!
//! [`Tls`] speaks the libp2p TLS handshake (`/tls/1.0.0`, spec: libp2p/specs tls/tls.md): each
//! side presents one self-signed certificate carrying its host key's signature of the
//! certificate key, and the peer id comes from that host key. libp2p-tls's own `Config` offers
//! ChaCha20-Poly1305 first, which the other side then picks; this one lists AES-128-GCM first
//! and, as a server, picks by its own order. The certificate checks are libp2p-tls's
//! ([`certificate::parse`], [`P2pCertificate::verify_signature`]).
//!
//! The TLS stream is wrapped in [`Coalesced`]: futures-rustls seals every write into a record
//! of its own and sends it at once, and yamux writes each frame's 12-byte header and its body
//! separately, so without it every frame costs two records, two syscalls and two TCP segments.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite, FutureExt};
use libp2p::PeerId;
use libp2p::core::upgrade::UpgradeInfo;
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use libp2p::identity::Keypair;
use libp2p::tls::certificate::{self, P2pCertificate};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    CertificateError, CommonState, DigitallySignedStruct, DistinguishedName, SignatureScheme,
};

/// The protocol name of the libp2p TLS handshake.
const PROTOCOL: &str = "/tls/1.0.0";
/// The ALPN value the libp2p TLS spec asks for.
const ALPN: &[u8] = b"libp2p";

/// Why a TLS config could not be built or a handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot make the TLS certificate: {0}")]
    Certificate(#[from] certificate::GenError),
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    #[error("the peer's TLS certificate is invalid: {0}")]
    PeerCertificate(#[from] certificate::ParseError),
    #[error("the peer presented no single TLS certificate")]
    NoCertificate,
}

/// The libp2p TLS upgrade with AES-GCM preferred; built by [`Tls::new`].
#[derive(Clone)]
pub(crate) struct Tls {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl Tls {
    /// A fresh certificate for `keypair` and the client and server configs presenting it.
    /// (Its signature fits the swarm builder's security constructors.)
    pub(crate) fn new(keypair: &Keypair) -> Result<Self, TlsError> {
        let (cert, key) = certificate::generate(keypair)?;
        let provider = provider();
        // The certificate goes in as it is: rustls's own loaders would run webpki on it,
        // which refuses the libp2p extension (marked critical).
        let key = provider.key_provider.load_private_key(key)?;
        let own = Arc::new(SingleCertAndKey::from(CertifiedKey::new(vec![cert], key)));
        let verifier = Arc::new(Libp2pVerifier);

        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier.clone())
            .with_cert_resolver(own.clone());
        server.ignore_client_order = true;
        server.alpn_protocols = vec![ALPN.to_vec()];

        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(own);
        client.alpn_protocols = vec![ALPN.to_vec()];

        Ok(Tls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// aws-lc's crypto with the TLS 1.3 suites only, AES-GCM (hardware AES) before ChaCha20.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = aws_lc_rs::default_provider();
    p.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(p)
}

/// The peer id of the one certificate the peer presented.
fn peer_id(state: &CommonState) -> Result<PeerId, TlsError> {
    match state.peer_certificates() {
        Some([cert]) => Ok(certificate::parse(cert)?.peer_id()),
        _ => Err(TlsError::NoCertificate),
    }
}

impl UpgradeInfo for Tls {
    type Info = &'static str;
    type InfoIter = std::iter::Once<&'static str>;

    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once(PROTOCOL)
    }
}

impl<C> InboundConnectionUpgrade<C> for Tls
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, Coalesced<futures_rustls::TlsStream<C>>);
    type Error = TlsError;
    type Future = BoxFuture<'static, Result<Self::Output, TlsError>>;

    fn upgrade_inbound(self, socket: C, _: Self::Info) -> Self::Future {
        async move {
            let stream = futures_rustls::TlsAcceptor::from(self.server)
                .accept(socket)
                .await
                .map_err(TlsError::Handshake)?;
            let peer = peer_id(stream.get_ref().1)?;
            Ok((peer, Coalesced::new(stream.into())))
        }
        .boxed()
    }
}

impl<C> OutboundConnectionUpgrade<C> for Tls
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, Coalesced<futures_rustls::TlsStream<C>>);
    type Error = TlsError;
    type Future = BoxFuture<'static, Result<Self::Output, TlsError>>;

    fn upgrade_outbound(self, socket: C, _: Self::Info) -> Self::Future {
        async move {
            // The spec forbids SNI; rustls sends none for an IP address.
            let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into());
            let stream = futures_rustls::TlsConnector::from(self.client)
                .connect(name, socket)
                .await
                .map_err(TlsError::Handshake)?;
            let peer = peer_id(stream.get_ref().1)?;
            Ok((peer, Coalesced::new(stream.into())))
        }
        .boxed()
    }
}

/// Most bytes [`Coalesced`] gathers before handing them on: the plaintext of one TLS record.
const COALESCE_LIMIT: usize = 16 * 1024;
/// Capacity the gathering buffer keeps between flushes (an idle connection holds no more).
const COALESCE_KEEP: usize = 1024;

/// A stream whose small writes are gathered and handed on in one piece when it is flushed
/// (or when they reach [`COALESCE_LIMIT`]); writes of that size or more go straight through.
/// Reads pass through. Whoever writes must flush, as every libp2p writer does.
///
/// A flush that finds gathered bytes first yields once: it wakes its task and answers
/// `Pending`, and hands the bytes on when it is called again. Yamux flushes after every frame,
/// and one call of a stream (open, request, close; then the answer's frames) is several
/// frames made in the same pass of the connection's task: the yield lets that pass finish, so
/// they leave in one TLS record and one write instead of one each.
pub(crate) struct Coalesced<S> {
    inner: S,
    /// Gathered bytes; those before `handed` are already written to `inner`.
    buf: Vec<u8>,
    handed: usize,
    /// A flush yielded since the last bytes were handed on: the next one hands them on.
    yielded: bool,
}

impl<S> Coalesced<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            handed: 0,
            yielded: false,
        }
    }

    /// The wrapped stream.
    #[cfg(test)]
    fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Writes the gathered bytes to the wrapped stream (without flushing it).
    fn poll_hand_on(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.handed < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.handed..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.handed += n;
        }
        self.buf.clear();
        self.buf.shrink_to(COALESCE_KEEP);
        self.handed = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() + data.len() > COALESCE_LIMIT {
            ready!(this.poll_hand_on(cx))?;
            if data.len() >= COALESCE_LIMIT {
                return Pin::new(&mut this.inner).poll_write(cx, data);
            }
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.handed < this.buf.len() && !this.yielded {
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.yielded = false;
        ready!(this.poll_hand_on(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_hand_on(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

/// Accepts exactly one self-signed libp2p certificate (no CA: the peer id is the identity; the
/// swarm checks it against the dialled one) and checks handshake signatures with its key.
#[derive(Debug)]
struct Libp2pVerifier;

impl Libp2pVerifier {
    fn check_chain(
        end_entity: &CertificateDer,
        intermediates: &[CertificateDer],
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General(
                "a libp2p TLS peer presents exactly one certificate".into(),
            ));
        }
        parse(end_entity).map(drop)
    }

    fn check_signature(
        message: &[u8],
        cert: &CertificateDer,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        parse(cert)?
            .verify_signature(dss.scheme, message, dss.signature())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))?;
        Ok(HandshakeSignatureValid::assertion())
    }

    fn schemes() -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::ED25519,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512,
        ]
    }
}

fn parse<'a>(cert: &'a CertificateDer<'a>) -> Result<P2pCertificate<'a>, rustls::Error> {
    certificate::parse(cert).map_err(|e| {
        rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(e))))
    })
}

/// TLS 1.2 is never negotiated (TLS 1.3 only); its signature check refuses.
fn no_tls12() -> rustls::Error {
    rustls::Error::General("TLS 1.2 is not offered".into())
}

impl ServerCertVerifier for Libp2pVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Self::check_chain(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::check_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Self::schemes()
    }
}

impl ClientCertVerifier for Libp2pVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Self::check_chain(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::check_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Self::schemes()
    }
}

#[cfg(test)]
mod tests {
    use futures::future::join;
    use tokio_util::compat::TokioAsyncReadCompatExt as _;

    use super::*;

    /// Both ends of a handshake over an in-memory pipe: each learns the other's peer id and
    /// they agree on AES-128-GCM.
    #[tokio::test]
    async fn handshake_authenticates_and_picks_aes() -> anyhow::Result<()> {
        let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (ta, tb) = (Tls::new(&a)?, Tls::new(&b)?);
        let (sa, sb) = tokio::io::duplex(64 * 1024);
        let (out, inb) = join(
            ta.upgrade_outbound(sa.compat(), PROTOCOL),
            tb.upgrade_inbound(sb.compat(), PROTOCOL),
        )
        .await;
        let ((peer_b, stream_a), (peer_a, _)) = (out?, inb?);
        assert_eq!(peer_b, b.public().to_peer_id());
        assert_eq!(peer_a, a.public().to_peer_id());
        let suite = stream_a
            .get_ref()
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .map(|s| s.suite());
        assert_eq!(suite, Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
        Ok(())
    }

    /// Counts the writes it receives.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        flushes: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().writes.push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Small writes reach the wrapped stream as one write when flushed; large ones go
    /// straight through, after what was gathered before them.
    #[tokio::test]
    async fn coalesced_gathers_small_writes_until_flush() -> anyhow::Result<()> {
        use futures::AsyncWriteExt as _;
        let mut w = Coalesced::new(Recorder::default());
        w.write_all(b"header").await?;
        w.write_all(b"body").await?;
        assert!(w.get_ref().writes.is_empty());
        w.flush().await?;
        assert_eq!(w.get_ref().writes, vec![b"headerbody".to_vec()]);
        assert_eq!(w.get_ref().flushes, 1);

        let big = vec![7u8; COALESCE_LIMIT];
        w.write_all(b"next").await?;
        w.write_all(&big).await?;
        w.flush().await?;
        assert_eq!(w.get_ref().writes[1..], [b"next".to_vec(), big]);
        Ok(())
    }

    /// A flush with bytes gathered first yields (waking its task, so the connection's pass
    /// can add more frames), then hands everything on in one write; an empty flush never
    /// yields.
    #[test]
    fn a_flush_yields_once_before_handing_on() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut w = Coalesced::new(Recorder::default());
        let mut flush = |w: &mut Coalesced<Recorder>| Pin::new(w).poll_flush(&mut cx);

        assert!(
            matches!(flush(&mut w), Poll::Ready(Ok(()))),
            "nothing gathered"
        );
        assert_eq!(count.0.load(Ordering::SeqCst), 0);

        let _ = Pin::new(&mut w).poll_write(&mut Context::from_waker(&waker), b"frame one");
        assert!(flush(&mut w).is_pending(), "the first flush yields");
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "and wakes its task");
        assert!(w.get_ref().writes.is_empty());
        let _ = Pin::new(&mut w).poll_write(&mut Context::from_waker(&waker), b"+two");
        assert!(matches!(flush(&mut w), Poll::Ready(Ok(()))));
        assert_eq!(w.get_ref().writes, vec![b"frame one+two".to_vec()]);
        assert_eq!(
            w.get_ref().flushes,
            2,
            "the empty flush and the one that handed on"
        );
    }

    /// A peer speaking libp2p-tls's own config (ChaCha20 first) still gets AES from us, and the
    /// handshake works both ways round.
    #[tokio::test]
    async fn interoperates_with_libp2p_tls() -> anyhow::Result<()> {
        let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let ours = Tls::new(&a)?;
        let theirs = libp2p::tls::Config::new(&b)?;
        let (sa, sb) = tokio::io::duplex(64 * 1024);
        let (out, inb) = join(
            theirs.upgrade_outbound(sa.compat(), PROTOCOL),
            ours.clone().upgrade_inbound(sb.compat(), PROTOCOL),
        )
        .await;
        let ((peer_a, _), (peer_b, stream)) = (out?, inb?);
        assert_eq!(peer_a, a.public().to_peer_id());
        assert_eq!(peer_b, b.public().to_peer_id());
        let suite = stream
            .get_ref()
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .map(|s| s.suite());
        assert_eq!(suite, Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));

        let theirs = libp2p::tls::Config::new(&b)?;
        let (sa, sb) = tokio::io::duplex(64 * 1024);
        let (out, inb) = join(
            ours.upgrade_outbound(sa.compat(), PROTOCOL),
            theirs.upgrade_inbound(sb.compat(), PROTOCOL),
        )
        .await;
        assert_eq!(out?.0, b.public().to_peer_id());
        assert_eq!(inb?.0, a.public().to_peer_id());
        Ok(())
    }

    /// A client that presents no certificate is refused (client authentication is mandatory).
    #[tokio::test]
    async fn refuses_a_client_without_certificate() -> anyhow::Result<()> {
        let a = Keypair::generate_ed25519();
        let ours = Tls::new(&a)?;
        let plain = client_without_certificate()?;
        let (sa, sb) = tokio::io::duplex(64 * 1024);
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into());
        let (out, inb) = join(
            futures_rustls::TlsConnector::from(plain).connect(name, sa.compat()),
            ours.upgrade_inbound(sb.compat(), PROTOCOL),
        )
        .await;
        assert!(inb.is_err(), "a client without certificate was accepted");
        drop(out);
        Ok(())
    }

    fn client_without_certificate() -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut c = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Libp2pVerifier))
            .with_no_client_auth();
        c.alpn_protocols = vec![ALPN.to_vec()];
        Ok(Arc::new(c))
    }
}
