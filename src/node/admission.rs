//! Certificates and admission on the node: this node's own certificate, the record store that
//! enforces `records:write`, the revocation list (file, data folder, DHT) and what the API
//! shows about them. [`Admission`] is the handle the node exposes as `node.admission()`.

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::PeerId;
use libp2p::identity::ed25519;
use libp2p::kad::store::{self, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use mcc_admission::{
    Certificate, CertificateFields, Gates, Permission, Permissions, RevocationList, format_unix,
    keys, now_unix,
};
use mcc_records::{Origin, ValidatingStore};
use serde::{Deserialize, Serialize};

use std::sync::{Arc, Weak};

use tokio_util::sync::CancellationToken;

use super::error::CertificateError;
use super::info::{AdmissionInfo, CertificateInfo};
use super::metrics::CertMetrics;
use super::{Command, Error, Inner, Network, Node};

/// File in the data folder with the newest revocation list this node has seen.
pub const REVOCATIONS_FILE: &str = "revocations.crl";

/// How long a self-signed certificate (open mode) is valid; it is made anew at every start.
const SELF_SIGNED_VALIDITY: u64 = 365 * 24 * 3600;

/// Certificates and admission.
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// This node's certificate (`--cert`); `None` makes a self-signed one with every
    /// permission at start (open mode).
    pub certificate: Option<Certificate>,
    /// The root CA whose certificates are admitted (`--trust-ca`); `None` is an open network.
    pub trusted_ca: Option<Certificate>,
    /// A revocation list to start with (`--revocations`); the newest of this, the one saved in
    /// the data folder and the one in the DHT is used.
    pub revocations: Option<RevocationList>,
    /// How often the CA's revocation list is looked up in the DHT.
    pub revocation_refresh: Duration,
    /// How long a new peer has to present a valid certificate.
    pub timeout: Duration,
    /// How long a refused peer is kept out.
    pub ban_duration: Duration,
    /// How often admitted peers' certificates are checked again (expiry, revocation).
    pub recheck_interval: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        let d = mcc_admission::Config::default();
        AdmissionConfig {
            certificate: None,
            trusted_ca: None,
            revocations: None,
            revocation_refresh: Duration::from_secs(300),
            timeout: d.timeout(),
            ban_duration: d.ban_duration(),
            recheck_interval: d.recheck_interval(),
        }
    }
}

/// This node's certificate: the configured one, checked, or a fresh self-signed one.
pub(crate) fn own_certificate(
    config: &AdmissionConfig,
    key: &ed25519::Keypair,
    peer_id: PeerId,
    label: &str,
) -> Result<Certificate, CertificateError> {
    let now = now_unix();
    if let Some(ca) = &config.trusted_ca {
        ca.verify_ca(now).map_err(CertificateError::BadCa)?;
    }
    let cert = match &config.certificate {
        Some(cert) => {
            if cert.peer_id() != peer_id {
                return Err(CertificateError::WrongKey {
                    cert: cert.peer_id().to_string(),
                    node: peer_id.to_string(),
                });
            }
            cert.check_validity(now)
                .map_err(CertificateError::Invalid)?;
            cert.clone()
        }
        None => Certificate::sign(
            key,
            CertificateFields::new(
                peer_id,
                label,
                Permissions::all(),
                now.saturating_sub(60),
                now + SELF_SIGNED_VALIDITY,
            ),
        )
        .map_err(|e| CertificateError::SelfSigned(e.to_string()))?,
    };
    if let Some(ca) = &config.trusted_ca {
        if let Some(list) = &config.revocations {
            list.verify(ca).map_err(CertificateError::BadRevocations)?;
        }
        cert.verify_for_peer(&peer_id, ca, now, config.revocations.as_ref())
            .map_err(CertificateError::NotTrusted)?;
    }
    Ok(cert)
}

/// The newest of the configured list and the one saved in the data folder (lists from another
/// CA, or that do not verify, are ignored with a warning).
pub(crate) fn newest_revocations(
    config: &AdmissionConfig,
    data_dir: Option<&Path>,
) -> Option<RevocationList> {
    let saved = data_dir
        .map(|d| d.join(REVOCATIONS_FILE))
        .filter(|path| path.exists())
        .and_then(|path| match crate::certs::load_revocations(&path) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!("ignored: {e}");
                None
            }
        });
    let valid = |l: &RevocationList| match &config.trusted_ca {
        Some(ca) => l.verify(ca).is_ok(),
        None => l.verify_issuer_signature().is_ok(),
    };
    [config.revocations.clone(), saved]
        .into_iter()
        .flatten()
        .filter(valid)
        .max_by_key(|l| l.sequence())
}

/// The kad record store with `records:write` enforced: a record pushed by a peer whose
/// certificate lacks it is refused (kad then resets the peer's stream). Records this node
/// writes itself are checked by the API before they get here.
///
/// Provider records: under `--trust-ca`, a peer whose certificate holds neither
/// `services:provide` nor `blobs:seed` may only announce the rendezvous key (every admitted
/// peer takes part in rendezvous). Each accepted record is handed to the
/// [`ValidatingStore`](mcc_records::ValidatingStore) with the network ([`Origin`]) of the
/// connection it arrived on, for its per-network provider policy.
pub struct GuardedStore<S> {
    store: S,
    gates: Gates,
    rendezvous: Option<RecordKey>,
}

impl<S> GuardedStore<S> {
    pub(crate) fn new(store: S, gates: Gates) -> Self {
        GuardedStore {
            store,
            gates,
            rendezvous: None,
        }
    }

    /// The rendezvous key: its provider records are accepted from every admitted peer.
    pub(crate) fn with_rendezvous(mut self, key: Option<RecordKey>) -> Self {
        self.rendezvous = key;
        self
    }

    /// The admission state the store checks writers against.
    pub(crate) fn gates(&self) -> &Gates {
        &self.gates
    }
}

impl<S: mcc_records::SourcedStore> mcc_records::SourcedStore for GuardedStore<ValidatingStore<S>> {
    /// Stores `r` on behalf of `source`: a remote source must hold `records:write`, as for an
    /// inbound PUT (the local node, `None`, is checked by the API before it writes).
    fn put_from(&mut self, r: Record, source: Option<PeerId>) -> store::Result<()> {
        if let Some(peer) = source
            && !self.gates.allows(&peer, Permission::RecordsWrite)
        {
            tracing::info!(%peer, "record refused: the peer's certificate lacks records:write");
            // Not really "too large": kad's store error is a closed enum of three variants
            // (MaxRecords, MaxProvidedKeys, ValueTooLarge) with no way to say "refused", and
            // any error makes kad reset the peer's stream, which is all that is wanted here.
            // Only a write on behalf of a peer (`source` is `Some`: an inbound PUT, or keeping a
            // newer version a peer supplied during a lookup, logged at debug by the event loop)
            // gets here; the node's own writes (`None`) never do, so no API caller sees this
            // error. The log line above says what really happened.
            return Err(store::Error::ValueTooLarge);
        }
        self.store.put_from(r, source)
    }
}

impl<S> Deref for GuardedStore<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.store
    }
}

impl<S> DerefMut for GuardedStore<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.store
    }
}

impl<S: mcc_records::SourcedStore> RecordStore for GuardedStore<ValidatingStore<S>> {
    type RecordsIter<'a>
        = S::RecordsIter<'a>
    where
        S: 'a;
    type ProvidedIter<'a>
        = S::ProvidedIter<'a>
    where
        S: 'a;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.store.get(k)
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        // kad stores inbound records while it handles the peer's message: the gate knows who
        // sent it. Anything else is this node's own write.
        let source = self.gates.current_source();
        mcc_records::SourcedStore::put_from(self, r, source)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.store.remove(k)
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.store.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        let Some(peer) = self.gates.current_source() else {
            // This node's own announcement (or a write not caused by a peer's message).
            return self.store.add_provider(record);
        };
        if self.rendezvous.as_ref() != Some(&record.key)
            && !self.gates.allows(&peer, Permission::ServicesProvide)
            && !self.gates.allows(&peer, Permission::BlobsSeed)
        {
            tracing::info!(
                %peer,
                "provider record refused: the peer's certificate lacks services:provide and \
                 blobs:seed"
            );
            return Err(store::Error::MaxProvidedKeys);
        }
        let origin = self
            .gates
            .current_source_address()
            .map(|a| Origin::of_address(&a))
            .unwrap_or(Origin::Unknown);
        self.store.add_provider_from(record, origin)
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.store.providers(key)
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.store.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.store.remove_provider(k, p)
    }
}

/// What publishing a revocation list did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevocationOutcome {
    pub sequence: u64,
    /// This node now enforces it (false: it already had this one or a newer one, or it trusts
    /// no CA).
    pub applied: bool,
    /// Stored in the DHT (at `/mcc/revocations/<ca>`).
    pub published: bool,
}

/// Admission on a node: its certificate and permissions, the admission state, revocation
/// lists. A cloneable handle over the node's [`Network`].
#[derive(Clone)]
pub struct Admission {
    net: Network,
    state: Arc<State>,
}

/// What the clones of [`Admission`] share.
struct State {
    trusted_ca: Option<Certificate>,
    data_dir: Option<PathBuf>,
    /// Largest record value (`--max-record-size`): a revocation list must fit one.
    record_max_value: usize,
    cert_metrics: CertMetrics,
}

impl Admission {
    pub(crate) fn new(
        net: Network,
        trusted_ca: Option<Certificate>,
        data_dir: Option<PathBuf>,
        record_max_value: usize,
        cert_metrics: CertMetrics,
    ) -> Self {
        Self {
            net,
            state: Arc::new(State {
                trusted_ca,
                data_dir,
                record_max_value,
                cert_metrics,
            }),
        }
    }

    /// This node's certificate.
    pub fn certificate(&self) -> &Certificate {
        self.net.certificate()
    }

    /// Whether this node's own certificate grants `permission`: the check made before it acts.
    pub fn may(&self, permission: Permission) -> Result<(), Error> {
        self.net.may(permission)
    }

    /// Admission state: mode, trusted CA, revocations, bans.
    pub async fn info(&self) -> Result<AdmissionInfo, Error> {
        self.net.request(Command::Admission).await
    }

    /// Installs a revocation list (if this node trusts its CA and it is newer), saves it in the
    /// data folder and publishes it in the DHT.
    pub async fn publish_revocations(
        &self,
        list: RevocationList,
    ) -> Result<RevocationOutcome, Error> {
        list.verify_issuer_signature().map_err(Error::Revocations)?;
        // It travels as one DHT record: a list that does not fit is refused before it is
        // applied or saved.
        let size = list.to_bytes().len();
        if size > self.state.record_max_value {
            return Err(Error::Invalid(mcc_records::ValidationError::TooLarge {
                size,
                max: self.state.record_max_value,
            }));
        }
        let applied = self.apply_revocations(list.clone()).await?;
        let issuer = keys::peer_id_of(list.issuer());
        let key = mcc_records::revocations_key(&issuer).into_bytes();
        let published = match self.net.put_record(key, list.to_bytes(), None).await {
            Ok(o) => o.stored_locally || o.replicated,
            Err(Error::Invalid(mcc_records::ValidationError::Stale { .. })) => false,
            Err(e) => return Err(e),
        };
        Ok(RevocationOutcome {
            sequence: list.sequence(),
            applied,
            published,
        })
    }

    /// Hands a list to the admission behaviour; saves it when it was newer and applied.
    async fn apply_revocations(&self, list: RevocationList) -> Result<bool, Error> {
        if self.state.trusted_ca.is_none() {
            // An open node enforces nothing, but may still publish the list for the others.
            return Ok(false);
        }
        let applied = self
            .net
            .request(|reply| Command::SetRevocations {
                list: Box::new(list.clone()),
                reply,
            })
            .await?
            .map_err(Error::Revocations)?;
        if applied && let Some(path) = self.revocations_path() {
            let text = format!("{}\n", list.to_base64());
            let path2 = path.clone();
            tokio::task::spawn_blocking(move || {
                crate::fsutil::write_atomic(&path2, text.as_bytes(), 0o600)
            })
            .await?
            .map_err(|source| Error::DataDir { path, source })?;
        }
        Ok(applied)
    }

    fn revocations_path(&self) -> Option<PathBuf> {
        self.state
            .data_dir
            .as_ref()
            .map(|d| d.join(REVOCATIONS_FILE))
    }

    /// Looks the trusted CA's revocation list up in the DHT and applies it if newer.
    pub(crate) async fn refresh_revocations(&self, ca: &PeerId) -> Result<bool, Error> {
        let key = mcc_records::revocations_key(ca).into_bytes();
        let found = match self.net.get_record(key).await {
            Ok(f) => f,
            Err(Error::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let list = RevocationList::from_bytes(&found.value).map_err(Error::RevocationsDecode)?;
        self.apply_revocations(list).await
    }

    /// Updates the expiry metrics and warns from 30 days before expiry.
    fn check_expiry(&self) {
        let cert = self.net.certificate();
        let info = CertificateInfo::of(cert);
        self.state
            .cert_metrics
            .update(info.expires_in_secs, info.expiring_soon);
        if info.self_signed {
            return;
        }
        if info.expires_in_secs == 0 {
            tracing::error!(
                "this node's certificate EXPIRED at {}: peers refuse it; ask the CA for a new one",
                info.expires
            );
        } else if info.expiring_soon {
            tracing::warn!(
                "this node's certificate expires in {} days (at {}): ask the CA for a new one",
                info.expires_in_secs / 86_400,
                info.expires
            );
        }
        if let Some(ca) = &self.state.trusted_ca
            && ca.expires_within(now_unix(), mcc_admission::EXPIRY_WARNING)
        {
            tracing::warn!(
                "the trusted CA certificate expires at {}: every certificate it signed stops \
                 working then",
                format_unix(ca.not_after())
            );
        }
    }
}

/// Background work of a node: warns before its certificate expires and keeps the revocation
/// list fresh from the DHT. Holds the node weakly (dropping every handle still stops it) and
/// ends when the node stops.
pub(crate) async fn admission_task(
    node: Weak<Inner>,
    stopped: CancellationToken,
    refresh: Duration,
) {
    let ca = match node.upgrade() {
        Some(inner) => inner
            .admission
            .state
            .trusted_ca
            .as_ref()
            .map(|c| keys::peer_id_of(c.issuer())),
        None => return,
    };
    let mut refresh_tick = tokio::time::interval(refresh);
    refresh_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut expiry_tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = stopped.cancelled() => break,
            _ = expiry_tick.tick() => {
                let Some(inner) = node.upgrade() else { break };
                Node { inner }.admission().check_expiry();
            }
            _ = refresh_tick.tick(), if ca.is_some() => {
                let (Some(ca), Some(inner)) = (&ca, node.upgrade()) else { break };
                match (Node { inner }).admission().refresh_revocations(ca).await {
                    Ok(true) => tracing::info!("newer revocation list from the DHT applied"),
                    Ok(false) => {}
                    Err(Error::Stopped) => break,
                    Err(e) => tracing::debug!("revocation list lookup: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
    use libp2p::swarm::SwarmEvent;
    use libp2p::{Multiaddr, Swarm, kad, noise, tcp, yamux};
    use mcc_admission::Gated;

    use super::*;

    type Kad = Gated<kad::Behaviour<GuardedStore<ValidatingStore<MemoryStore>>>>;

    /// A kad server with the node's store stack (open network), `max` providers per key.
    fn swarm(max: usize) -> Swarm<Kad> {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let gates = Gates::new(false);
        let inner = MemoryStore::with_config(
            peer,
            MemoryStoreConfig {
                max_providers_per_key: 1000,
                ..Default::default()
            },
        );
        let limits = mcc_records::Limits {
            max_value_size: 1024,
            max_providers_per_key: max,
        };
        let store = GuardedStore::new(
            ValidatingStore::new(inner, limits).with_local_peer(peer),
            gates.clone(),
        );
        let mut kad =
            kad::Behaviour::with_config(peer, store, kad::Config::new(kad::PROTOCOL_NAME));
        kad.set_mode(Some(kad::Mode::Server));
        let behaviour = Gated::new(kad, gates).tracking_source();
        libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp")
            .with_behaviour(|_| behaviour)
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
            .build()
    }

    async fn listen(swarm: &mut Swarm<Kad>, ip: &str) -> Multiaddr {
        swarm
            .listen_on(format!("/ip4/{ip}/tcp/0").parse().expect("addr"))
            .expect("listen");
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    }

    /// A new node listening on `ip` announces itself for `key` to `b`, over a connection `b`
    /// dialled (on loopback the kernel gives every outbound connection the source address
    /// 127.0.0.1, whatever address the dialler listens on; `b` observes the address it dialled).
    async fn announce(b: &mut Swarm<Kad>, b_addr: &Multiaddr, ip: &str, key: &RecordKey) -> PeerId {
        let mut p = swarm(20);
        let p_addr = listen(&mut p, ip).await;
        let p_id = *p.local_peer_id();
        b.dial(p_addr).expect("dial");
        let b_id = *b.local_peer_id();
        // Both sides must know the connection, or P's kad dials B itself.
        let connect = async {
            let (mut at_b, mut at_p) = (false, false);
            while !(at_b && at_p) {
                tokio::select! {
                    e = b.select_next_some() => {
                        if let SwarmEvent::ConnectionEstablished { peer_id, .. } = e {
                            at_b |= peer_id == p_id;
                        }
                    }
                    e = p.select_next_some() => {
                        if let SwarmEvent::ConnectionEstablished { peer_id, .. } = e {
                            at_p |= peer_id == b_id;
                        }
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), connect)
            .await
            .expect("connection timed out");
        p.behaviour_mut().add_address(&b_id, b_addr.clone());
        p.behaviour_mut()
            .start_providing(key.clone())
            .expect("own record");
        let run = async {
            loop {
                tokio::select! {
                    e = p.select_next_some() => {
                        if let SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed {
                            result: kad::QueryResult::StartProviding(r), ..
                        }) = e {
                            r.expect("announced");
                            break;
                        }
                    }
                    _ = b.select_next_some() => {}
                }
            }
            // Let B read the ADD_PROVIDER.
            let settle = tokio::time::sleep(Duration::from_millis(300));
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    _ = &mut settle => break,
                    _ = p.select_next_some() => {}
                    _ = b.select_next_some() => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("announcement timed out");
        p_id
    }

    fn stored(b: &mut Swarm<Kad>, key: &RecordKey) -> Vec<PeerId> {
        b.behaviour_mut()
            .store_mut()
            .providers(key)
            .into_iter()
            .map(|p| p.provider)
            .collect()
    }

    /// Review M1 through real connections: the store learns the network of each ADD_PROVIDER
    /// from the connection it arrived on, so new identities on the attackers' network only
    /// replace each other and never the provider from another network.
    #[tokio::test]
    async fn provider_slots_follow_the_observed_source_network() {
        let mut b = swarm(2);
        let b_addr = listen(&mut b, "127.0.2.1").await;
        let key = RecordKey::new(&[0x12, 0x20, 0xdb]);
        announce(&mut b, &b_addr, "127.0.0.1", &key).await;
        announce(&mut b, &b_addr, "127.0.0.1", &key).await;
        assert_eq!(stored(&mut b, &key).len(), 2);
        let v = announce(&mut b, &b_addr, "127.0.3.1", &key).await;
        assert!(
            stored(&mut b, &key).contains(&v),
            "the other network got in"
        );
        for _ in 0..3 {
            let a = announce(&mut b, &b_addr, "127.0.0.1", &key).await;
            let now = stored(&mut b, &key);
            assert_eq!(now.len(), 2);
            assert!(
                now.contains(&a),
                "the newest attacker replaced its own network's"
            );
            assert!(
                now.contains(&v),
                "an attacker evicted the other network's provider"
            );
        }
    }
}
