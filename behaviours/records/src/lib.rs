//! Validated DHT records for mcc.
//!
//! Record keys are namespaced like IPFS keys (`/<namespace>/<rest>`):
//!
//! - `/mcc/<key>`: free key-value records, any value up to the size limit;
//! - `/did/<did>`: DID documents ([`did::SignedDocument`]) signed by the DID's own ed25519 key,
//!   with a sequence number that must grow on every update;
//! - any other namespace is refused.
//!
//! [`ValidatingStore`] wraps a kad [`RecordStore`](libp2p::kad::store::RecordStore) so that
//! every record reaching it — from peers or from the local node — is validated first.

pub mod did;
mod key;
mod store;
mod validate;

pub use key::{
    DID_NAMESPACE, KeyError, MAX_KEY_LEN, MCC_NAMESPACE, Namespace, did_key, mcc_key, parse_key,
};
pub use store::{Limits, Stats, ValidatingStore};
pub use validate::{Validated, ValidationError, check_replace, select_best, validate};
