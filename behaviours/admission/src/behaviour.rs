//! The admission [`Behaviour`]: certificate exchange on [`PROTOCOL_NAME`], bans, re-checks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures_timer::Delay;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::request_response::{self as rr, OutboundFailure, ProtocolSupport};
use libp2p::swarm::{
    CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, DialFailure, FromSwarm,
    ListenFailure, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    behaviour::ConnectionEstablished,
};
use libp2p::{PeerId, StreamProtocol};

use crate::codec::{Codec, Request, Response};
use crate::{CertError, Certificate, DecodeError, Gates, RevocationList, now_unix};

/// The certificate exchange protocol.
pub const PROTOCOL_NAME: StreamProtocol = StreamProtocol::new("/mcc/cert/1.0.0");

/// Default of [`Config::timeout`].
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`Config::ban_duration`].
const DEFAULT_BAN_DURATION: Duration = Duration::from_secs(300);
/// Default of [`Config::recheck_interval`].
const DEFAULT_RECHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Settings of the admission [`Behaviour`]: built with [`Config::new`] and the `with_*`
/// methods, read with the getters of the same names.
///
/// ```
/// use std::time::Duration;
/// let config = mcc_admission::Config::new().with_ban_duration(Duration::from_secs(60));
/// assert_eq!(config.ban_duration(), Duration::from_secs(60));
/// assert!(config.trusted_ca().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    trusted_ca: Option<Certificate>,
    revocations: Option<RevocationList>,
    timeout: Duration,
    ban_duration: Duration,
    recheck_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// The defaults: an open network (no trusted CA, no revocation list), 10 s to present a
    /// certificate, refused peers banned for 5 minutes, admitted peers checked again every
    /// 10 s.
    pub fn new() -> Self {
        Config {
            trusted_ca: None,
            revocations: None,
            timeout: DEFAULT_TIMEOUT,
            ban_duration: DEFAULT_BAN_DURATION,
            recheck_interval: DEFAULT_RECHECK_INTERVAL,
        }
    }

    /// Sets the root CA whose certificates are admitted; `None` is an open network.
    pub fn with_trusted_ca(mut self, ca: Option<Certificate>) -> Self {
        self.trusted_ca = ca;
        self
    }

    /// Sets the revocation list known at start.
    pub fn with_revocations(mut self, list: Option<RevocationList>) -> Self {
        self.revocations = list;
        self
    }

    /// Sets how long a new peer has to present a valid certificate.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long a refused peer is kept out.
    pub fn with_ban_duration(mut self, duration: Duration) -> Self {
        self.ban_duration = duration;
        self
    }

    /// Sets how often admitted peers' certificates are checked again.
    pub fn with_recheck_interval(mut self, interval: Duration) -> Self {
        self.recheck_interval = interval;
        self
    }

    /// The root CA whose certificates are admitted; `None` is an open network (no checks,
    /// every peer served, certificates still answered so closed nodes can check ours).
    pub fn trusted_ca(&self) -> Option<&Certificate> {
        self.trusted_ca.as_ref()
    }

    /// Revocations known at start (see also [`Behaviour::set_revocations`]).
    pub fn revocations(&self) -> Option<&RevocationList> {
        self.revocations.as_ref()
    }

    /// How long a new peer has to present a valid certificate.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long a refused peer is kept out (its dials and connections are denied).
    pub fn ban_duration(&self) -> Duration {
        self.ban_duration
    }

    /// How often admitted peers' certificates are checked again (expiry, revocation).
    pub fn recheck_interval(&self) -> Duration {
        self.recheck_interval
    }
}

/// Why a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// Its certificate does not verify (wrong CA, expired, revoked, not its own...).
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// What it sent is not a certificate.
    #[error("invalid certificate: {0}")]
    Decode(#[from] DecodeError),
    /// It presented no certificate in time.
    #[error("no certificate presented within {0:?}")]
    Timeout(Duration),
    /// It does not speak the exchange protocol at all.
    #[error("the peer does not speak {PROTOCOL_NAME}: it has no mcc certificate")]
    Unsupported,
    /// The exchange failed.
    #[error("certificate exchange failed: {0}")]
    Exchange(String),
}

/// Events of the admission [`Behaviour`].
#[derive(Debug, Clone)]
pub enum Event {
    /// The peer's certificate verified: it is served from now on.
    Admitted {
        /// The peer.
        peer: PeerId,
        /// Its verified certificate.
        certificate: Box<Certificate>,
    },
    /// The peer was refused: disconnected and banned for [`Config::ban_duration`].
    Refused {
        /// The peer.
        peer: PeerId,
        /// Why.
        error: AdmissionError,
    },
    /// The peer refused our certificate, with the reason it gave.
    RefusedBy {
        /// The peer.
        peer: PeerId,
        /// Its reason (peer-supplied text, at most 512 bytes).
        reason: String,
    },
}

/// Refused peers that the behaviour may not dial or accept.
#[derive(Debug, thiserror::Error)]
#[error("peer {0} is temporarily banned: its certificate was refused")]
pub struct Banned(pub PeerId);

/// Certificate exchange and admission on every new connection (see the crate documentation).
///
/// With a trusted CA, each side sends its certificate as soon as a connection is up, checks
/// the other's (signature, issuer, peer id, validity window, revocation) and admits or refuses
/// the peer. [`Gated`](crate::Gated) behaviours sharing [`Behaviour::gates`] serve the peer
/// only once it is admitted. Refused peers, and peers that present nothing within
/// [`Config::timeout`], are disconnected and banned; admitted ones are checked again every
/// [`Config::recheck_interval`], so expiry and new revocations cut them off.
pub struct Behaviour {
    rr: rr::Behaviour<Codec>,
    own: Certificate,
    config: Config,
    gates: Gates,
    /// Peers we wait for, and until when.
    pending: HashMap<PeerId, Instant>,
    /// Refused peers, until when.
    banned: HashMap<PeerId, Instant>,
    /// Refused peers, and why: closed at the deadline.
    closing: HashMap<PeerId, (Instant, String)>,
    events: VecDeque<ToSwarm<Event, THandlerInEvent<rr::Behaviour<Codec>>>>,
    tick: Delay,
    last_recheck: Instant,
    /// The signature checks of the trusted CA (structure, self-signature) and of the
    /// revocation list in force, made once when they are installed rather than for every
    /// peer on every check.
    installed: Result<(), CertError>,
}

/// How often timeouts and bans are looked at.
const TICK: Duration = Duration::from_millis(250);
/// How long a refused peer stays connected (its gates closed) so that both sides' reasons
/// reach the other before the connection closes.
const LINGER: Duration = Duration::from_secs(1);

impl Behaviour {
    /// A behaviour presenting `own` (this node's certificate).
    pub fn new(own: Certificate, config: Config) -> Behaviour {
        let rr = rr::Behaviour::with_codec(
            Codec,
            [(PROTOCOL_NAME, ProtocolSupport::Full)],
            rr::Config::default().with_request_timeout(config.timeout),
        );
        let installed = match &config.trusted_ca {
            Some(ca) => check_installed(ca, config.revocations.as_ref()),
            None => Ok(()),
        };
        Behaviour {
            installed,
            rr,
            own,
            gates: Gates::new(config.trusted_ca.is_some()),
            config,
            pending: HashMap::new(),
            banned: HashMap::new(),
            closing: HashMap::new(),
            events: VecDeque::new(),
            tick: Delay::new(TICK),
            last_recheck: Instant::now(),
        }
    }

    /// The shared admission state, for [`Gated`](crate::Gated) behaviours and permission checks.
    pub fn gates(&self) -> Gates {
        self.gates.clone()
    }

    /// This node's certificate.
    pub fn own_certificate(&self) -> &Certificate {
        &self.own
    }

    /// The trusted CA, if the network is closed.
    pub fn trusted_ca(&self) -> Option<&Certificate> {
        self.config.trusted_ca.as_ref()
    }

    /// The revocation list in force.
    pub fn revocations(&self) -> Option<&RevocationList> {
        self.config.revocations.as_ref()
    }

    /// Peers currently banned.
    pub fn banned(&self) -> Vec<PeerId> {
        let now = Instant::now();
        self.banned
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Installs a newer revocation list (signed by the trusted CA) and cuts off the admitted
    /// peers it names. Returns `Ok(false)` if the list is not newer than the one in force.
    pub fn set_revocations(&mut self, list: RevocationList) -> Result<bool, CertError> {
        let Some(ca) = &self.config.trusted_ca else {
            return Err(CertError::RevocationListWrongIssuer);
        };
        list.verify(ca)?;
        if let Some(current) = &self.config.revocations
            && !list.newer_than(current)
        {
            return Ok(false);
        }
        self.config.revocations = Some(list);
        // `list.verify(ca)` passed above, and it checks the CA's structure too.
        self.installed = Ok(());
        self.recheck();
        Ok(true)
    }

    /// Checks a certificate the way peers' certificates are checked.
    pub fn verify(&self, peer: &PeerId, cert: &Certificate) -> Result<(), CertError> {
        match &self.config.trusted_ca {
            Some(ca) => {
                self.installed.clone()?;
                cert.verify_for_peer_checked(peer, ca, now_unix(), self.config.revocations.as_ref())
            }
            None => Ok(()),
        }
    }

    fn is_banned(&mut self, peer: &PeerId) -> bool {
        match self.banned.get(peer) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                self.banned.remove(peer);
                false
            }
            None => false,
        }
    }

    /// Verifies what `peer` sent; admits it (once) or returns why not.
    fn check(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), AdmissionError> {
        if self.is_banned(&peer) {
            // Refused a moment ago (a timeout races with a late answer): stays refused.
            return Err(AdmissionError::Exchange("the peer is banned".into()));
        }
        let cert = Certificate::from_bytes(bytes)?;
        self.verify(&peer, &cert)?;
        self.pending.remove(&peer);
        if self.gates.certificate(&peer).as_ref() != Some(&cert) {
            self.gates.admit(peer, cert.clone());
            tracing::debug!(%peer, label = cert.label(), "peer admitted");
            self.events
                .push_back(ToSwarm::GenerateEvent(Event::Admitted {
                    peer,
                    certificate: Box::new(cert),
                }));
        }
        Ok(())
    }

    /// Refuses `peer`: gates closed at once, banned, and disconnected after [`LINGER`] (at once
    /// if it does not talk the exchange).
    fn refuse(&mut self, peer: PeerId, error: AdmissionError) {
        // Both directions of the exchange can fail for the same peer (its request and its
        // answer to ours): it is refused and reported once.
        if self.is_banned(&peer) {
            return;
        }
        tracing::info!(%peer, "peer refused: {error}");
        self.gates.refuse(&peer);
        self.pending.remove(&peer);
        let now = Instant::now();
        self.banned.insert(peer, now + self.config.ban_duration);
        match error {
            // It does not talk to us: nothing to wait for.
            AdmissionError::Timeout(_) | AdmissionError::Unsupported => self.close(peer),
            // Stay connected (gates closed) for LINGER, so our reason reaches it as the answer
            // to its own request, and its answer to ours reaches us.
            _ => {
                self.closing.insert(peer, (now + LINGER, error.to_string()));
            }
        }
        self.events
            .push_back(ToSwarm::GenerateEvent(Event::Refused { peer, error }));
    }

    fn close(&mut self, peer: PeerId) {
        self.closing.remove(&peer);
        self.events.push_back(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::All,
        });
    }

    /// Checks every admitted peer again (expiry, revocation, CA expiry).
    fn recheck(&mut self) {
        self.last_recheck = Instant::now();
        let Some(ca) = &self.config.trusted_ca else {
            return;
        };
        let now = now_unix();
        // Admitted certificates had their signature verified at admission, and the CA and the
        // list when they were installed: only times and revocations can have changed.
        let refused: Vec<(PeerId, CertError)> = self
            .gates
            .admitted()
            .into_iter()
            .filter_map(|(peer, cert)| {
                self.installed
                    .clone()
                    .and_then(|()| cert.recheck_verified(ca, now, self.config.revocations.as_ref()))
                    .err()
                    .map(|e| (peer, e))
            })
            .collect();
        for (peer, e) in refused {
            self.refuse(peer, e.into());
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let timed_out: Vec<PeerId> = self
            .pending
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in timed_out {
            self.refuse(peer, AdmissionError::Timeout(self.config.timeout));
        }
        let due: Vec<PeerId> = self
            .closing
            .iter()
            .filter(|(_, (d, _))| *d <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            self.close(peer);
        }
        self.banned.retain(|_, until| *until > now);
        if now.duration_since(self.last_recheck) >= self.config.recheck_interval {
            self.recheck();
        }
    }

    fn on_rr_event(&mut self, event: rr::Event<Request, Response>) {
        let enforcing = self.config.trusted_ca.is_some();
        match event {
            rr::Event::Message {
                peer,
                message:
                    rr::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if let Some((_, reason)) = self.closing.get(&peer) {
                    // Already refused: tell it why (the connection closes at the deadline).
                    let _ = self
                        .rr
                        .send_response(channel, Response::Refused(reason.clone()));
                    return;
                }
                let verdict = if enforcing {
                    self.check(peer, &request.0)
                } else {
                    Ok(())
                };
                match verdict {
                    Ok(()) => {
                        let _ = self
                            .rr
                            .send_response(channel, Response::Certificate(self.own.to_bytes()));
                    }
                    Err(error) => {
                        let _ = self
                            .rr
                            .send_response(channel, Response::Refused(error.to_string()));
                        self.refuse(peer, error);
                    }
                }
            }
            rr::Event::Message {
                peer,
                message: rr::Message::Response { response, .. },
                ..
            } => match response {
                Response::Certificate(bytes) => {
                    if enforcing
                        && !self.closing.contains_key(&peer)
                        && let Err(error) = self.check(peer, &bytes)
                    {
                        self.refuse(peer, error);
                    }
                }
                Response::Refused(reason) => {
                    tracing::debug!(%peer, "peer refused our certificate: {reason}");
                    self.events
                        .push_back(ToSwarm::GenerateEvent(Event::RefusedBy { peer, reason }));
                }
                Response::Unknown { status, text } => {
                    // A newer peer's answer we cannot use: it presented no certificate we can
                    // check, as when the exchange fails.
                    tracing::debug!(%peer, status, "unknown certificate answer: {text}");
                    if self.pending.contains_key(&peer) {
                        let error = format!("unknown answer status {status}: {text}");
                        self.refuse(peer, AdmissionError::Exchange(error));
                    }
                }
            },
            rr::Event::OutboundFailure { peer, error, .. } => {
                if !self.pending.contains_key(&peer) {
                    return;
                }
                match error {
                    OutboundFailure::UnsupportedProtocols => {
                        self.refuse(peer, AdmissionError::Unsupported)
                    }
                    OutboundFailure::ConnectionClosed | OutboundFailure::DialFailure => {}
                    OutboundFailure::Timeout => {
                        self.refuse(peer, AdmissionError::Timeout(self.config.timeout))
                    }
                    e => self.refuse(peer, AdmissionError::Exchange(e.to_string())),
                }
            }
            rr::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "certificate request not answered: {error}");
            }
            // A refused peer is closed at its deadline, not as soon as our answer is out: the
            // peer's answer to our own request may still be on its way, and closing would
            // lose it (and with it the reason it refused us).
            rr::Event::ResponseSent { .. } => {}
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = THandler<rr::Behaviour<Codec>>;
    type ToSwarm = Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.rr
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.is_banned(&peer) {
            return Err(ConnectionDenied::new(Banned(peer)));
        }
        self.rr
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = maybe_peer
            && self.is_banned(&peer)
        {
            return Err(ConnectionDenied::new(Banned(peer)));
        }
        self.rr.handle_pending_outbound_connection(
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
        if self.is_banned(&peer) {
            return Err(ConnectionDenied::new(Banned(peer)));
        }
        self.rr.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // request-response first: it must know the new connection before we send on it, or it
        // dials the peer again and the request waits for that second connection.
        self.rr.on_swarm_event(event);
        match &event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                other_established,
                ..
            }) => {
                if self.config.trusted_ca.is_some() {
                    if !self.gates.is_admitted(peer_id) && !self.pending.contains_key(peer_id) {
                        self.pending
                            .insert(*peer_id, Instant::now() + self.config.timeout);
                        self.rr.send_request(peer_id, Request(self.own.to_bytes()));
                    }
                } else if *other_established == 0 {
                    // An open node checks nothing, but presents its certificate too: a closed
                    // node that refuses it says why, and the operator sees it in the log.
                    self.rr.send_request(peer_id, Request(self.own.to_bytes()));
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                remaining_established,
                ..
            }) => {
                self.gates.remove_connection(connection_id);
                if *remaining_established == 0 {
                    self.pending.remove(peer_id);
                    self.closing.remove(peer_id);
                }
            }
            FromSwarm::DialFailure(DialFailure { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.gates.remove_connection(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.rr
            .on_connection_handler_event(peer_id, connection_id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Poll::Ready(e);
            }
            if self.tick.poll_unpin(cx).is_ready() {
                self.tick.reset(TICK);
                if self.config.trusted_ca.is_some() {
                    self.on_tick();
                }
                continue;
            }
            match self.rr.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(e)) => self.on_rr_event(e),
                Poll::Ready(other) => {
                    // `map_out` wants a function for `GenerateEvent`, which the arm above took
                    // (no peer input gets here).
                    return Poll::Ready(
                        other.map_out(|_| unreachable!("GenerateEvent is matched above")),
                    );
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The signature checks of a trusted CA and its revocation list, made when they are installed.
fn check_installed(ca: &Certificate, list: Option<&RevocationList>) -> Result<(), CertError> {
    ca.check_ca_structure()?;
    if let Some(list) = list {
        list.verify(ca)?;
    }
    Ok(())
}

/// Peers currently waiting for admission (for tests and diagnostics).
impl Behaviour {
    /// Peers whose certificate has not arrived yet.
    pub fn pending(&self) -> HashSet<PeerId> {
        self.pending.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::ed25519;

    use super::*;
    use crate::cert::signature_checks;
    use crate::{CertificateFields, Permissions, RevocationFields, keys};

    fn key() -> ed25519::Keypair {
        keys::to_ed25519(&keys::generate()).expect("ed25519")
    }

    fn cert_for(ca_key: &ed25519::Keypair, node: &ed25519::Keypair, now: u64) -> Certificate {
        Certificate::sign(
            ca_key,
            CertificateFields::new(
                keys::peer_id_of(&node.public()),
                "node",
                Permissions::all(),
                now - 60,
                now + 3600,
            ),
        )
        .expect("certificate")
    }

    /// L8: the CA's self-signature and the revocation list's signature are verified when they
    /// are installed, not for every admitted peer on every re-check; re-checks verify no
    /// signature at all, yet still cut off a revoked peer.
    #[test]
    fn recheck_verifies_no_signature_and_still_revokes() {
        let now = now_unix();
        let ca_key = key();
        let ca = Certificate::new_ca(&ca_key, "CA", now - 60, now + 3600).expect("ca");
        let list = RevocationList::sign(
            &ca_key,
            RevocationFields {
                sequence: 1,
                issued_at: now,
                peers: [PeerId::random()].into(),
                ..RevocationFields::default()
            },
        )
        .expect("list");
        let own_key = key();
        let mut b = Behaviour::new(
            cert_for(&ca_key, &own_key, now),
            Config {
                trusted_ca: Some(ca.clone()),
                revocations: Some(list),
                ..Config::default()
            },
        );
        let peers: Vec<(PeerId, Certificate)> = (0..5)
            .map(|_| {
                let k = key();
                (keys::peer_id_of(&k.public()), cert_for(&ca_key, &k, now))
            })
            .collect();

        // A new peer's certificate: only its own signature is verified.
        let before = signature_checks();
        for (peer, cert) in &peers {
            b.verify(peer, cert).expect("valid");
            b.gates.admit(*peer, cert.clone());
        }
        assert_eq!(signature_checks() - before, peers.len() as u64);

        // Re-checks of admitted peers: no signature at all (it was 3 per peer: CA, list, cert).
        let before = signature_checks();
        for _ in 0..3 {
            b.recheck();
        }
        assert_eq!(signature_checks() - before, 0);
        assert_eq!(b.gates.admitted().len(), peers.len());

        // A newer list naming a peer: verified once when installed, and the peer is cut off.
        let revoked = peers[0].0;
        let newer = RevocationList::sign(
            &ca_key,
            RevocationFields {
                sequence: 2,
                issued_at: now,
                peers: [revoked].into(),
                ..RevocationFields::default()
            },
        )
        .expect("list");
        let before = signature_checks();
        assert_eq!(b.set_revocations(newer), Ok(true));
        // The list's signature and the CA's self-signature, once.
        assert_eq!(signature_checks() - before, 2);
        assert!(!b.gates.is_admitted(&revoked));
        assert_eq!(b.gates.admitted().len(), peers.len() - 1);
    }

    #[test]
    fn a_bad_installed_list_refuses_everyone() {
        let now = now_unix();
        let ca_key = key();
        let ca = Certificate::new_ca(&ca_key, "CA", now - 60, now + 3600).expect("ca");
        // A list signed by another key: it does not verify against the CA.
        let forged = RevocationList::sign(
            &key(),
            RevocationFields {
                sequence: 1,
                issued_at: now,
                ..RevocationFields::default()
            },
        )
        .expect("list");
        let b = Behaviour::new(
            cert_for(&ca_key, &key(), now),
            Config {
                trusted_ca: Some(ca),
                revocations: Some(forged),
                ..Config::default()
            },
        );
        let k = key();
        let cert = cert_for(&ca_key, &k, now);
        assert!(b.verify(&keys::peer_id_of(&k.public()), &cert).is_err());
    }
}
