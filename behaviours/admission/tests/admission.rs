//! In-process swarm tests of the admission [`Behaviour`] and of [`Gated`]: two swarms over the
//! memory transport of libp2p-swarm-test, each running the admission behaviour first and a
//! gated ping, so that whether the gated protocol is served can be observed.

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::identity::{Keypair, ed25519};
use libp2p::request_response::{self as rr, ProtocolSupport};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{
    ConnectionDenied, DialError, ListenError, NetworkBehaviour, Swarm, SwarmEvent,
};
use libp2p::{Multiaddr, PeerId, ping};
use libp2p_swarm_test::SwarmExt;
use mcc_admission::codec::{Codec, Response};
use mcc_admission::{
    AdmissionError, Banned, Behaviour, CertError, Certificate, CertificateFields, Config, Event,
    Gated, PROTOCOL_NAME, Permission, RevocationFields, RevocationList, keys, now_unix,
};

const HOUR: u64 = 3600;
/// How long a peer has to present its certificate (and the exchange's request timeout).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);
const RECHECK: Duration = Duration::from_millis(200);
const PING_INTERVAL: Duration = Duration::from_millis(300);
/// Upper bound for anything that should happen within a few round trips.
const SOON: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Certificates

struct Ca {
    key: ed25519::Keypair,
    cert: Certificate,
}

impl Ca {
    fn new(label: &str) -> Ca {
        let key = keys::to_ed25519(&keys::generate()).unwrap();
        let now = now_unix();
        let cert = Certificate::new_ca(&key, label, now - HOUR, now + 24 * HOUR).unwrap();
        Ca { key, cert }
    }

    fn peer_id(&self) -> PeerId {
        keys::peer_id_of(&self.key.public())
    }

    fn issue(
        &self,
        peer: PeerId,
        label: &str,
        permissions: &[Permission],
        not_before: u64,
        not_after: u64,
    ) -> Certificate {
        let fields = CertificateFields::new(
            peer,
            label,
            permissions.iter().copied().collect(),
            not_before,
            not_after,
        );
        Certificate::sign(&self.key, fields).unwrap()
    }

    /// A node certificate valid from a minute ago for an hour.
    fn cert_for(&self, peer: PeerId, label: &str, permissions: &[Permission]) -> Certificate {
        let now = now_unix();
        self.issue(peer, label, permissions, now - 60, now + HOUR)
    }

    fn revocations(&self, sequence: u64, revoked: &Certificate) -> RevocationList {
        RevocationList::sign(
            &self.key,
            RevocationFields {
                sequence,
                issued_at: now_unix(),
                serials: [revoked.serial()].into(),
                peers: Default::default(),
            },
        )
        .unwrap()
    }
}

fn peer_of(key: &Keypair) -> PeerId {
    key.public().to_peer_id()
}

/// A certificate for `key`'s own peer id, signed by `key` itself (no CA involved).
fn self_signed(key: &Keypair) -> Certificate {
    let ed = keys::to_ed25519(key).unwrap();
    let now = now_unix();
    let fields = CertificateFields::new(
        peer_of(key),
        "Rogue",
        [Permission::All].into_iter().collect(),
        now - 60,
        now + HOUR,
    );
    Certificate::sign(&ed, fields).unwrap()
}

fn config(trusted_ca: Option<&Ca>) -> Config {
    Config::new()
        .with_trusted_ca(trusted_ca.map(|ca| ca.cert.clone()))
        .with_timeout(EXCHANGE_TIMEOUT)
        .with_ban_duration(Duration::from_secs(60))
        .with_recheck_interval(RECHECK)
}

// ---------------------------------------------------------------------------------------------
// Swarms

/// The test node: admission first, then a protocol it gates.
#[derive(NetworkBehaviour)]
struct Node {
    admission: Behaviour,
    ping: Gated<ping::Behaviour>,
}

fn ping_behaviour() -> ping::Behaviour {
    ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL))
}

/// A node presenting the certificate `cert` makes for its key.
fn node(config: Config, cert: impl FnOnce(&Keypair) -> Certificate) -> Swarm<Node> {
    Swarm::new_ephemeral_tokio(|key| {
        let admission = Behaviour::new(cert(&key), config);
        let gates = admission.gates();
        Node {
            admission,
            ping: Gated::new(ping_behaviour(), gates),
        }
    })
}

/// An enforcing node of `ca` presenting a certificate of it.
fn member(ca: &Ca, label: &str, permissions: &[Permission]) -> Swarm<Node> {
    node(config(Some(ca)), |k| {
        ca.cert_for(peer_of(k), label, permissions)
    })
}

/// The enforcing node most tests meet: "alpha", every permission.
fn alpha(ca: &Ca) -> Swarm<Node> {
    member(ca, "alpha", &[Permission::All])
}

fn own_cert(swarm: &Swarm<Node>) -> Certificate {
    swarm.behaviour().admission.own_certificate().clone()
}

/// A peer that speaks the certificate protocol but never answers and never sends its own
/// certificate; it pings (ungated).
#[derive(NetworkBehaviour)]
struct Silent {
    cert: rr::Behaviour<Codec>,
    ping: ping::Behaviour,
}

fn silent() -> Swarm<Silent> {
    Swarm::new_ephemeral_tokio(|_| Silent {
        cert: rr::Behaviour::with_codec(
            Codec,
            [(PROTOCOL_NAME, ProtocolSupport::Full)],
            rr::Config::default(),
        ),
        ping: ping_behaviour(),
    })
}

fn dial(
    from: &mut Swarm<impl NetworkBehaviour>,
    to: PeerId,
    addr: &Multiaddr,
) -> Result<(), DialError> {
    from.dial(DialOpts::peer_id(to).addresses(vec![addr.clone()]).build())
}

fn banned_peer(cause: &ConnectionDenied) -> PeerId {
    match cause.downcast_ref::<Banned>() {
        Some(Banned(peer)) => *peer,
        None => panic!("connection denied for another reason: {cause}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Observing both swarms

/// What one swarm reported.
#[derive(Default)]
struct Side {
    admitted: Vec<(PeerId, Certificate)>,
    refused: Vec<(PeerId, AdmissionError)>,
    refused_by: Vec<(PeerId, String)>,
    /// Peers an outbound ping succeeded to.
    ping_ok: Vec<PeerId>,
    /// Every ping event, successful or not.
    ping_events: usize,
    /// A ping succeeded to a peer not (yet) admitted by this side.
    ping_before_admission: bool,
    established: usize,
    closed: usize,
    /// Connections denied because the peer is banned.
    denied: Vec<PeerId>,
    /// Certificate requests received by a [`Silent`] peer, held unanswered.
    held: Vec<rr::ResponseChannel<Response>>,
}

impl Side {
    fn connected(&self) -> bool {
        self.established > self.closed
    }

    fn disconnected(&self) -> bool {
        self.established > 0 && self.established == self.closed
    }

    fn observe<B: Recorded>(&mut self, event: SwarmEvent<B::ToSwarm>) {
        match event {
            SwarmEvent::ConnectionEstablished { .. } => self.established += 1,
            SwarmEvent::ConnectionClosed { .. } => self.closed += 1,
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                ..
            }
            | SwarmEvent::OutgoingConnectionError {
                error: DialError::Denied { cause },
                ..
            } => self.denied.push(banned_peer(&cause)),
            SwarmEvent::Behaviour(event) => B::record(self, event),
            _ => {}
        }
    }

    fn admission(&mut self, event: Event) {
        match event {
            Event::Admitted { peer, certificate } => self.admitted.push((peer, *certificate)),
            Event::Refused { peer, error } => self.refused.push((peer, error)),
            Event::RefusedBy { peer, reason } => self.refused_by.push((peer, reason)),
        }
    }

    fn ping(&mut self, event: ping::Event) {
        self.ping_events += 1;
        if event.result.is_ok() {
            if !self.admitted.iter().any(|(p, _)| *p == event.peer) {
                self.ping_before_admission = true;
            }
            self.ping_ok.push(event.peer);
        }
    }

    /// Checks that `peer` was refused exactly once (one incident, one event).
    fn assert_refused_once(&self, peer: PeerId) {
        let n = self.refused.iter().filter(|(p, _)| *p == peer).count();
        assert_eq!(n, 1, "{peer} refused {n} times: {:?}", self.refused);
    }

    fn was_admitted(&self, peer: PeerId) -> bool {
        self.admitted.iter().any(|(p, _)| *p == peer)
    }

    fn was_refused(&self, peer: PeerId) -> bool {
        self.refused.iter().any(|(p, _)| *p == peer)
    }

    /// The first refusal of `peer`.
    fn refusal_of(&self, peer: PeerId) -> &AdmissionError {
        &self
            .refused
            .iter()
            .find(|(p, _)| *p == peer)
            .unwrap_or_else(|| panic!("{peer} was not refused"))
            .1
    }
}

trait Recorded: NetworkBehaviour<ToSwarm: std::fmt::Debug> + Send {
    fn record(side: &mut Side, event: Self::ToSwarm);
}

impl Recorded for Node {
    fn record(side: &mut Side, event: NodeEvent) {
        match event {
            NodeEvent::Admission(e) => side.admission(e),
            NodeEvent::Ping(e) => side.ping(e),
        }
    }
}

impl Recorded for ping::Behaviour {
    fn record(side: &mut Side, event: ping::Event) {
        side.ping(event);
    }
}

impl Recorded for Silent {
    fn record(side: &mut Side, event: SilentEvent) {
        match event {
            SilentEvent::Cert(rr::Event::Message {
                message: rr::Message::Request { channel, .. },
                ..
            }) => side.held.push(channel),
            SilentEvent::Cert(_) => {}
            SilentEvent::Ping(e) => side.ping(e),
        }
    }
}

/// Swarm `a`, an admission node listening at `addr`, and swarm `b`, which dials it, with what
/// each reported.
struct Pair<B: Recorded> {
    a: Swarm<Node>,
    sa: Side,
    b: Swarm<B>,
    sb: Side,
    addr: Multiaddr,
}

impl<B: Recorded> Pair<B> {
    /// `a` listening, nobody connected yet.
    async fn listening(mut a: Swarm<Node>, b: Swarm<B>) -> Self {
        let addr = a.listen().with_memory_addr_external().await.0;
        Pair {
            a,
            sa: Side::default(),
            b,
            sb: Side::default(),
            addr,
        }
    }

    /// The peer ids of `a` and `b`.
    fn ids(&self) -> (PeerId, PeerId) {
        (*self.a.local_peer_id(), *self.b.local_peer_id())
    }

    /// `b` dials `a`.
    fn dial(&mut self) {
        let a_id = *self.a.local_peer_id();
        dial(&mut self.b, a_id, &self.addr).unwrap();
    }

    /// Drives both swarms until `done` holds; false if it did not within `limit`.
    async fn drive(&mut self, limit: Duration, done: impl Fn(&Side, &Side) -> bool) -> bool {
        let Pair { a, sa, b, sb, .. } = self;
        let run = async {
            while !done(sa, sb) {
                tokio::select! {
                    e = a.select_next_some() => sa.observe::<Node>(e),
                    e = b.select_next_some() => sb.observe::<B>(e),
                }
            }
        };
        tokio::time::timeout(limit, run).await.is_ok()
    }

    /// Drives both swarms until `done` holds, failing the test after `limit`.
    async fn until(&mut self, limit: Duration, what: &str, done: impl Fn(&Side, &Side) -> bool) {
        assert!(
            self.drive(limit, done).await,
            "not reached within {limit:?}: {what}"
        );
    }

    /// Drives both swarms for `time`, recording what happens.
    async fn settle(&mut self, time: Duration) {
        self.drive(time, |_, _| false).await;
    }

    /// Drives both swarms until `a` refused `b`, `b` heard why, and both are disconnected.
    async fn until_refused_and_told(&mut self) {
        let b_id = *self.b.local_peer_id();
        self.until(SOON, "refusal, reason and disconnection", |sa, sb| {
            sa.was_refused(b_id)
                && !sb.refused_by.is_empty()
                && sa.disconnected()
                && sb.disconnected()
        })
        .await;
    }
}

/// Both sides pinged the other successfully.
fn pinged_both_ways(a_id: PeerId, b_id: PeerId) -> impl Fn(&Side, &Side) -> bool {
    move |sa, sb| sa.ping_ok.contains(&b_id) && sb.ping_ok.contains(&a_id)
}

/// `a` refused `peer` and both sides saw the connection close.
fn cut_off(peer: PeerId) -> impl Fn(&Side, &Side) -> bool {
    move |sa, sb| sa.was_refused(peer) && sa.disconnected() && sb.disconnected()
}

/// Checks that `a` has banned `peer`: listed, not admitted, its dials refused right away.
fn assert_banned(a: &mut Swarm<Node>, peer: PeerId) {
    assert!(
        a.behaviour().admission.banned().contains(&peer),
        "{peer} is not banned"
    );
    let gates = a.behaviour().admission.gates();
    assert!(!gates.is_admitted(&peer));
    assert!(!gates.allows(&peer, Permission::RpcCall));
    assert!(!a.is_connected(&peer));
    let anywhere: Multiaddr = "/memory/4242".parse().unwrap();
    match dial(a, peer, &anywhere) {
        Err(DialError::Denied { cause }) => assert_eq!(banned_peer(&cause), peer),
        other => panic!("dialing a banned peer was not denied: {other:?}"),
    }
}

/// Two enforcing nodes of `ca`; `b` dials `a`. Returns them once both admitted the other.
async fn admitted_pair(ca: &Ca, b_cert: impl FnOnce(&Keypair) -> Certificate) -> Pair<Node> {
    let a = alpha(ca);
    let b = node(config(Some(ca)), b_cert);
    let mut pair = Pair::listening(a, b).await;
    let (a_id, b_id) = pair.ids();
    pair.dial();
    pair.until(SOON, "mutual admission", |sa, sb| {
        sa.was_admitted(b_id) && sb.was_admitted(a_id)
    })
    .await;
    pair
}

// ---------------------------------------------------------------------------------------------
// Tests

/// Case 1: certificates of the trusted CA on both sides.
#[tokio::test]
async fn peers_of_the_trusted_ca_admit_each_other_and_serve_gated_protocols() {
    let ca = Ca::new("Test CA");
    let a = member(&ca, "Alpha-1", &[Permission::RpcCall]);
    let b = member(&ca, "Beta 2", &[Permission::RpcCall, Permission::BlobsSeed]);
    let (a_cert, b_cert) = (own_cert(&a), own_cert(&b));
    assert!(a.behaviour().admission.gates().is_enforcing());

    let mut pair = Pair::listening(a, b).await;
    let (a_id, b_id) = pair.ids();
    pair.dial();
    pair.until(
        SOON,
        "admission and gated pings both ways",
        pinged_both_ways(a_id, b_id),
    )
    .await;
    // A few more pings: nothing else happens, one admission each.
    pair.settle(2 * PING_INTERVAL).await;

    let Pair { a, sa, b, sb, .. } = &pair;
    assert_eq!(sa.admitted, vec![(b_id, b_cert.clone())]);
    assert_eq!(sb.admitted, vec![(a_id, a_cert.clone())]);
    assert_eq!(sa.admitted[0].1.label(), "beta2");
    assert_eq!(sb.admitted[0].1.label(), "alpha1");
    assert!(sa.refused.is_empty() && sb.refused.is_empty());
    assert!(sa.refused_by.is_empty() && sb.refused_by.is_empty());
    assert!(!sa.ping_before_admission && !sb.ping_before_admission);
    assert!(sa.ping_ok.iter().all(|p| *p == b_id) && sb.ping_ok.iter().all(|p| *p == a_id));
    assert!(a.is_connected(&b_id) && b.is_connected(&a_id));

    let ga = a.behaviour().admission.gates();
    assert!(ga.is_admitted(&b_id));
    assert_eq!(ga.certificate(&b_id), Some(b_cert));
    assert_eq!(ga.admitted().len(), 1);
    assert!(ga.allows(&b_id, Permission::RpcCall));
    assert!(ga.allows(&b_id, Permission::BlobsSeed));
    assert!(!ga.allows(&b_id, Permission::ServicesConsume));
    assert!(!ga.allows(&b_id, Permission::RecordsWrite));
    let gb = b.behaviour().admission.gates();
    assert!(gb.is_admitted(&a_id));
    assert_eq!(gb.certificate(&a_id), Some(a_cert));
    assert!(gb.allows(&a_id, Permission::RpcCall));
    assert!(!gb.allows(&a_id, Permission::BlobsSeed));
    assert!(!gb.allows(&a_id, Permission::ServicesConsume));
    // Nobody else is admitted or allowed anything.
    let stranger = PeerId::random();
    assert!(!ga.is_admitted(&stranger) && !ga.allows(&stranger, Permission::RpcCall));
    assert!(a.behaviour().admission.pending().is_empty());
    assert!(b.behaviour().admission.pending().is_empty());
    assert!(a.behaviour().admission.banned().is_empty());
}

/// Case 2: a self-signed certificate. The node trusts the CA (so it sends its certificate and
/// hears why it was refused), but nobody trusts its own certificate.
#[tokio::test]
async fn self_signed_certificate_is_refused_and_the_peer_banned() {
    let ca = Ca::new("Test CA");
    let s = node(config(Some(&ca)), self_signed);
    let mut pair = Pair::listening(alpha(&ca), s).await;
    let (a_id, s_id) = pair.ids();
    pair.dial();
    pair.until_refused_and_told().await;
    pair.settle(3 * PING_INTERVAL).await;

    let Pair { a, sa, sb: ss, .. } = &mut pair;
    let error = sa.refusal_of(s_id).clone();
    assert_eq!(error, AdmissionError::Certificate(CertError::SelfSigned));
    let (by, reason) = &ss.refused_by[0];
    assert_eq!(*by, a_id);
    assert_eq!(reason, &error.to_string());
    assert!(reason.contains("self-signed"), "{reason}");
    assert!(sa.admitted.is_empty());
    // The gated ping was never run on the refusing side, nor served to the refused peer.
    assert_eq!(sa.ping_events, 0);
    assert!(ss.ping_ok.is_empty());
    assert!(!sa.connected() && !ss.connected());
    sa.assert_refused_once(s_id);
    assert_banned(a, s_id);

    // The refused peer dials again: the enforcing side denies the connection.
    let established = sa.established;
    pair.dial();
    pair.until(SOON, "second connection denied", |sa, _| {
        sa.denied.contains(&s_id)
    })
    .await;
    pair.settle(Duration::from_millis(500)).await;
    let Pair {
        a,
        sa,
        b: s,
        sb: ss,
        ..
    } = &pair;
    assert_eq!(
        sa.established, established,
        "a banned peer got a connection"
    );
    assert!(!a.is_connected(&s_id) && !s.is_connected(&a_id));
    assert_eq!(sa.ping_events, 0);
    assert!(ss.ping_ok.is_empty());
}

/// Case 2, open variant: the self-signed node trusts no CA. It checks nothing but still
/// presents its certificate, so it is refused, told why, and banned all the same.
#[tokio::test]
async fn self_signed_open_node_is_refused_and_banned() {
    let ca = Ca::new("Test CA");
    let o = node(config(None), self_signed);
    let mut pair = Pair::listening(alpha(&ca), o).await;
    let (a_id, o_id) = pair.ids();
    pair.dial();
    pair.until_refused_and_told().await;
    pair.settle(3 * PING_INTERVAL).await;

    let Pair { a, sa, sb: so, .. } = &mut pair;
    assert_eq!(
        sa.refusal_of(o_id),
        &AdmissionError::Certificate(CertError::SelfSigned)
    );
    assert_eq!(so.refused_by.len(), 1);
    assert_eq!(so.refused_by[0].0, a_id);
    assert!(
        so.refused_by[0].1.contains("self-signed"),
        "{:?}",
        so.refused_by
    );
    assert!(so.refused.is_empty() && so.admitted.is_empty());
    sa.assert_refused_once(o_id);
    assert!(sa.admitted.is_empty());
    assert_eq!(sa.ping_events, 0);
    // The open node pings at once, but the enforcing node never answered it.
    assert!(so.ping_ok.is_empty());
    assert_banned(a, o_id);

    pair.dial();
    pair.until(SOON, "second connection denied", |sa, _| {
        sa.denied.contains(&o_id)
    })
    .await;
    assert!(!pair.a.is_connected(&o_id));
}

/// Case 3: two closed networks meet. Each refuses the other's certificate (another CA).
#[tokio::test]
async fn certificate_of_another_ca_is_refused_with_wrong_issuer() {
    let ca1 = Ca::new("First CA");
    let ca2 = Ca::new("Second CA");
    let a = alpha(&ca1);
    let b = member(&ca2, "beta", &[Permission::All]);
    let mut pair = Pair::listening(a, b).await;
    let (a_id, b_id) = pair.ids();
    pair.dial();
    pair.until(SOON, "mutual refusal and disconnection", |sa, sb| {
        sa.was_refused(b_id) && sb.was_refused(a_id) && sa.disconnected() && sb.disconnected()
    })
    .await;
    pair.settle(3 * PING_INTERVAL).await;

    let Pair { a, sa, b, sb, .. } = &mut pair;
    assert_eq!(
        sa.refusal_of(b_id),
        &AdmissionError::Certificate(CertError::WrongIssuer {
            issuer: ca2.peer_id()
        })
    );
    assert_eq!(
        sb.refusal_of(a_id),
        &AdmissionError::Certificate(CertError::WrongIssuer {
            issuer: ca1.peer_id()
        })
    );
    sa.assert_refused_once(b_id);
    sb.assert_refused_once(a_id);
    assert!(sa.admitted.is_empty() && sb.admitted.is_empty());
    assert_eq!(sa.ping_events + sb.ping_events, 0);
    assert_banned(a, b_id);
    assert_banned(b, a_id);
}

/// Case 4: an expired certificate.
#[tokio::test]
async fn expired_certificate_is_refused_and_told_so() {
    let ca = Ca::new("Test CA");
    let a = alpha(&ca);
    let now = now_unix();
    let e = node(config(Some(&ca)), |k| {
        ca.issue(
            peer_of(k),
            "old",
            &[Permission::All],
            now - 2 * HOUR,
            now - 60,
        )
    });
    let e_cert = own_cert(&e);
    let mut pair = Pair::listening(a, e).await;
    let (a_id, e_id) = pair.ids();
    pair.dial();
    pair.until_refused_and_told().await;
    pair.settle(3 * PING_INTERVAL).await;

    let Pair { a, sa, sb: se, .. } = &mut pair;
    sa.assert_refused_once(e_id);
    match sa.refusal_of(e_id) {
        AdmissionError::Certificate(CertError::Expired { not_after, now: at }) => {
            assert_eq!(*not_after, e_cert.not_after());
            assert!(*at >= now);
        }
        other => panic!("refused for another reason: {other:?}"),
    }
    let (by, reason) = &se.refused_by[0];
    assert_eq!(*by, a_id);
    assert!(reason.contains("expired"), "{reason}");
    assert!(sa.admitted.is_empty());
    assert_eq!(sa.ping_events, 0);
    assert!(se.ping_ok.is_empty());
    assert_banned(a, e_id);
}

/// Case 5: a valid certificate of the trusted CA, presented by a key it was not issued for.
#[tokio::test]
async fn certificate_of_another_peer_is_refused_with_peer_mismatch() {
    let ca = Ca::new("Test CA");
    let a = alpha(&ca);
    let owner = PeerId::from(keys::generate().public());
    let stolen = ca.cert_for(owner, "victim", &[Permission::All]);
    let w = node(config(Some(&ca)), |_| stolen.clone());
    let mut pair = Pair::listening(a, w).await;
    let w_id = pair.ids().1;
    pair.dial();
    pair.until_refused_and_told().await;
    pair.settle(3 * PING_INTERVAL).await;

    let Pair { a, sa, sb: sw, .. } = &mut pair;
    sa.assert_refused_once(w_id);
    assert_eq!(
        sa.refusal_of(w_id),
        &AdmissionError::Certificate(CertError::PeerMismatch { found: owner })
    );
    assert!(
        sw.refused_by[0]
            .1
            .contains("not for the peer presenting it"),
        "{}",
        sw.refused_by[0].1
    );
    assert!(sa.admitted.is_empty());
    assert!(!a.behaviour().admission.gates().is_admitted(&owner));
    assert_eq!(sa.ping_events, 0);
    assert!(sw.ping_ok.is_empty());
    assert_banned(a, w_id);
}

/// Case 6: a revocation list installed while the revoked peer is connected and admitted.
#[tokio::test]
async fn revocation_cuts_off_a_connected_peer() {
    let ca = Ca::new("Test CA");
    let mut pair =
        admitted_pair(&ca, |k| ca.cert_for(peer_of(k), "beta", &[Permission::All])).await;
    let (a_id, b_id) = pair.ids();
    let b_cert = own_cert(&pair.b);
    pair.until(SOON, "gated pings both ways", pinged_both_ways(a_id, b_id))
        .await;

    // A list naming b but signed by another key: refused, nothing changes.
    let impostor = Ca::new("Impostor");
    assert_eq!(
        pair.a
            .behaviour_mut()
            .admission
            .set_revocations(impostor.revocations(9, &b_cert)),
        Err(CertError::RevocationListWrongIssuer)
    );
    pair.settle(2 * RECHECK).await;
    assert!(pair.sa.refused.is_empty());
    assert!(pair.a.behaviour().admission.revocations().is_none());
    assert!(pair.a.behaviour().admission.gates().is_admitted(&b_id));
    assert!(pair.a.is_connected(&b_id));

    // The CA's list.
    let list = ca.revocations(5, &b_cert);
    assert_eq!(
        pair.a
            .behaviour_mut()
            .admission
            .set_revocations(list.clone()),
        Ok(true)
    );
    assert!(!pair.a.behaviour().admission.gates().is_admitted(&b_id));
    pair.until(SOON, "revoked peer refused and disconnected", cut_off(b_id))
        .await;
    assert_eq!(
        pair.sa.refusal_of(b_id),
        &AdmissionError::Certificate(CertError::Revoked {
            serial: b_cert.serial()
        })
    );
    pair.sa.assert_refused_once(b_id);
    assert_banned(&mut pair.a, b_id);

    // The same list again, an equal sequence and an older one: not newer, nothing to do.
    let admission = &mut pair.a.behaviour_mut().admission;
    assert_eq!(admission.set_revocations(list.clone()), Ok(false));
    let other_b = ca.cert_for(PeerId::random(), "other", &[]);
    assert_eq!(
        admission.set_revocations(ca.revocations(5, &other_b)),
        Ok(false)
    );
    assert_eq!(
        admission.set_revocations(ca.revocations(4, &other_b)),
        Ok(false)
    );
    assert_eq!(admission.revocations(), Some(&list));
    assert_eq!(
        admission.set_revocations(impostor.revocations(10, &b_cert)),
        Err(CertError::RevocationListWrongIssuer)
    );
    assert_eq!(admission.revocations(), Some(&list));
}

/// Case 7: a certificate that expires while its node is connected.
#[tokio::test]
async fn expiry_while_connected_cuts_off_the_peer() {
    let ca = Ca::new("Test CA");
    let issued = now_unix();
    let mut pair = admitted_pair(&ca, |k| {
        ca.issue(
            peer_of(k),
            "shortlived",
            &[Permission::All],
            issued - 60,
            issued + 3,
        )
    })
    .await;
    let b_id = pair.ids().1;
    let b_cert = own_cert(&pair.b);
    assert!(pair.sa.refused.is_empty());
    let admitted_at = Instant::now();

    pair.until(
        Duration::from_secs(8),
        "expired peer refused and disconnected",
        cut_off(b_id),
    )
    .await;
    assert!(
        now_unix() >= b_cert.not_after(),
        "refused before the certificate expired"
    );
    assert!(admitted_at.elapsed() > Duration::from_secs(1));
    match pair.sa.refusal_of(b_id) {
        AdmissionError::Certificate(CertError::Expired { not_after, .. }) => {
            assert_eq!(*not_after, b_cert.not_after())
        }
        other => panic!("refused for another reason: {other:?}"),
    }
    pair.settle(2 * RECHECK).await;
    pair.sa.assert_refused_once(b_id);
    assert!(pair.sa.ping_ok.contains(&b_id), "b was served while valid");
    assert_banned(&mut pair.a, b_id);
}

/// Case 8: a peer that does not speak the certificate protocol at all.
#[tokio::test]
async fn peer_without_the_protocol_is_refused_as_unsupported() {
    let ca = Ca::new("Test CA");
    let p = Swarm::new_ephemeral_tokio(|_| ping_behaviour());
    let mut pair = Pair::listening(alpha(&ca), p).await;
    let p_id = pair.ids().1;
    pair.dial();
    pair.until(SOON, "refusal and disconnection", cut_off(p_id))
        .await;
    pair.settle(3 * PING_INTERVAL).await;

    let Pair { a, sa, sb: sp, .. } = &mut pair;
    assert_eq!(sa.refusal_of(p_id), &AdmissionError::Unsupported);
    sa.assert_refused_once(p_id);
    assert!(sa.admitted.is_empty());
    assert_eq!(sa.ping_events, 0);
    assert!(
        sp.ping_ok.is_empty(),
        "the gated ping served a refused peer"
    );
    assert_banned(a, p_id);
}

/// A peer that speaks the protocol but never presents a certificate: the gated protocol is
/// not served meanwhile, and the peer is refused once the timeout is up.
#[tokio::test]
async fn peer_presenting_nothing_is_refused_after_the_timeout() {
    let ca = Ca::new("Test CA");
    let mut pair = Pair::listening(alpha(&ca), silent()).await;
    let q_id = pair.ids().1;
    let start = Instant::now();
    pair.dial();

    pair.until(SOON, "request received", |_, sq| !sq.held.is_empty())
        .await;
    assert!(pair.a.behaviour().admission.pending().contains(&q_id));
    pair.until(
        EXCHANGE_TIMEOUT + SOON,
        "refusal and disconnection",
        cut_off(q_id),
    )
    .await;
    assert!(start.elapsed() >= EXCHANGE_TIMEOUT - Duration::from_millis(100));
    pair.settle(3 * PING_INTERVAL).await;

    let Pair { a, sa, sb: sq, .. } = &mut pair;
    sa.assert_refused_once(q_id);
    match sa.refusal_of(q_id) {
        // The behaviour's own deadline, or the request timeout of the exchange (same length).
        AdmissionError::Timeout(_) => {}
        AdmissionError::Exchange(e) if e.to_lowercase().contains("timeout") => {}
        other => panic!("refused for another reason: {other:?}"),
    }
    assert!(a.behaviour().admission.pending().is_empty());
    assert!(sa.admitted.is_empty());
    assert_eq!(sa.ping_events, 0);
    // It pinged all along; the enforcing side held every ping stream unanswered.
    assert!(
        sq.ping_ok.is_empty(),
        "the gated ping served a pending peer"
    );
    assert_banned(a, q_id);
}

/// Case 9: an open node (no trusted CA) with a certificate of the CA meets an enforcing node.
#[tokio::test]
async fn open_node_is_admitted_by_an_enforcing_node_and_serves_it() {
    let ca = Ca::new("Test CA");
    let a = alpha(&ca);
    let o = node(config(None), |k| {
        ca.cert_for(peer_of(k), "Open", &[Permission::RpcCall])
    });
    let o_cert = own_cert(&o);
    let go = o.behaviour().admission.gates();
    assert!(!go.is_enforcing());

    let mut pair = Pair::listening(a, o).await;
    let (a_id, o_id) = pair.ids();
    pair.dial();
    pair.until(
        SOON,
        "admission and pings both ways",
        pinged_both_ways(a_id, o_id),
    )
    .await;
    pair.settle(2 * PING_INTERVAL).await;

    let Pair {
        a,
        sa,
        b: o,
        sb: so,
        ..
    } = &pair;
    assert_eq!(sa.admitted, vec![(o_id, o_cert)]);
    assert!(!sa.ping_before_admission);
    let ga = a.behaviour().admission.gates();
    assert!(ga.allows(&o_id, Permission::RpcCall));
    assert!(!ga.allows(&o_id, Permission::ServicesConsume));
    // The open node checks nothing and reports nothing: no exchange of its own.
    assert!(so.admitted.is_empty() && so.refused.is_empty() && so.refused_by.is_empty());
    assert!(o.behaviour().admission.pending().is_empty());
    assert!(go.is_admitted(&a_id));
    assert!(go.allows(&a_id, Permission::ServicesConsume));
    assert_eq!(go.certificate(&a_id), None);
    assert!(a.is_connected(&o_id) && o.is_connected(&a_id));
}
