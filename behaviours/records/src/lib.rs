//! Validated DHT records for mcc.
//!
//! Record keys are namespaced like IPFS keys (`/<namespace>/<rest>`):
//!
//! - `/mcc/<key>`: free key-value records, any value up to the size limit;
//! - `/mcc/revocations/<CA peer id>`: the exception under `/mcc/`: a CA's revocation list
//!   ([`mcc_admission::RevocationList`], binary), issued and signed by the ed25519 key the peer
//!   id names, with a sequence number that must grow on every update;
//! - `/did/<did>`: DID documents ([`did::SignedDocument`]) signed by the DID's own ed25519 key,
//!   with a sequence number that must grow on every update;
//! - any other namespace is refused.
//!
//! [`ValidatingStore`] wraps a kad [`RecordStore`](libp2p::kad::store::RecordStore) so that
//! every record reaching it — from peers or from the local node — is validated first.

pub mod did;
mod key;
pub mod providers;
mod store;
mod validate;

pub use key::{
    DID_NAMESPACE, KeyError, MAX_KEY_LEN, MCC_NAMESPACE, Namespace, REVOCATIONS_PREFIX, did_key,
    is_free_key, mcc_key, parse_key, revocations_key,
};
pub use providers::{Origin, trim_provider_addresses};
pub use store::{Limits, SourcedStore, Stats, ValidatingStore};
pub use validate::{
    RevocationListError, Validated, ValidationError, check_replace, select_best, validate,
};
