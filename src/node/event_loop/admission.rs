//! Admission (`mcc_admission`, `--trust-ca`) as the loop sees it: the outcome of certificate
//! exchanges, the admission summary of the API, and installing a newer revocation list.
//!
//! The admission rules themselves live in `behaviours/admission` and `node/admission.rs`.

use super::EventLoop;
use crate::node::AdmissionInfo;

impl EventLoop {
    /// `Command::Admission`, and part of `Command::Info`.
    pub(super) fn admission_info(&self) -> AdmissionInfo {
        let admission = &self.swarm.behaviour().admission;
        let list = admission.revocations();
        AdmissionInfo {
            mode: if admission.trusted_ca().is_some() {
                "closed"
            } else {
                "open"
            }
            .to_string(),
            trusted_ca: admission
                .trusted_ca()
                .map(|c| mcc_admission::keys::peer_id_of(c.issuer()).to_string()),
            trusted_ca_expires: admission
                .trusted_ca()
                .map(|c| mcc_admission::format_unix(c.not_after())),
            revocations_sequence: list.map(|l| l.sequence()),
            revoked_serials: list
                .map(|l| l.serials().iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
            revoked_peers: list
                .map(|l| l.peers().iter().map(|p| p.to_string()).collect())
                .unwrap_or_default(),
            banned: admission.banned().iter().map(|p| p.to_string()).collect(),
        }
    }

    /// `Command::SetRevocations`: `Ok(true)` if the list was newer and is now in force.
    pub(super) fn set_revocations(
        &mut self,
        list: mcc_admission::RevocationList,
    ) -> Result<bool, mcc_admission::CertError> {
        self.swarm.behaviour_mut().admission.set_revocations(list)
    }

    pub(super) fn on_admission(&mut self, event: mcc_admission::Event) {
        match event {
            mcc_admission::Event::Admitted { peer, certificate } => {
                self.metrics
                    .admission
                    .get_or_create(&vec![("outcome", "admitted")])
                    .inc();
                tracing::info!(%peer, label = certificate.label(), permissions = %certificate.permissions(), "peer admitted");
                self.on_peer_admitted(peer);
            }
            mcc_admission::Event::Refused { peer, error } => {
                self.metrics
                    .admission
                    .get_or_create(&vec![("outcome", "refused")])
                    .inc();
                tracing::warn!(%peer, "peer refused: {error}");
                self.swarm.behaviour_mut().kad.remove_peer(&peer);
            }
            mcc_admission::Event::RefusedBy { peer, reason } => {
                self.metrics
                    .admission
                    .get_or_create(&vec![("outcome", "refused_by_peer")])
                    .inc();
                tracing::warn!(%peer, "this node's certificate was refused by the peer: {reason}");
            }
        }
    }
}
