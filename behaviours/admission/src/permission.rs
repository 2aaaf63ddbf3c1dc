//! Permissions a certificate grants.
//!
//! User input is parsed strictly ([`Permissions::from_str`]): an unknown name is an error. A
//! certificate decoded from the wire keeps names it does not know (written by a newer mcc) in
//! [`Permissions::unknown`]; they are re-encoded unchanged but never grant anything.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::error::{DecodeError, PermissionError};
use crate::wire::{Reader, Writer};

/// Most permission entries in one certificate or request.
pub const MAX_PERMISSIONS: usize = 32;
/// Longest permission name in bytes.
pub const MAX_PERMISSION_LEN: usize = 32;

/// One permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// `services:provide`: offer services to other nodes.
    ServicesProvide,
    /// `services:consume`: use services of other nodes.
    ServicesConsume,
    /// `records:write`: write records to the DHT.
    RecordsWrite,
    /// `blobs:seed`: serve blobs to other nodes.
    BlobsSeed,
    /// `rpc:call`: call RPC methods on other nodes.
    RpcCall,
    /// `routes:publish`: send route messages to other nodes.
    RoutesPublish,
    /// `routes:subscribe`: register interests in routes with other nodes (and so receive
    /// their messages).
    RoutesSubscribe,
    /// `all`: every permission, including ones added later.
    All,
}

impl Permission {
    /// Every permission, `All` last.
    pub const ALL: [Permission; 8] = [
        Permission::ServicesProvide,
        Permission::ServicesConsume,
        Permission::RecordsWrite,
        Permission::BlobsSeed,
        Permission::RpcCall,
        Permission::RoutesPublish,
        Permission::RoutesSubscribe,
        Permission::All,
    ];

    /// The name as written in certificates and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ServicesProvide => "services:provide",
            Permission::ServicesConsume => "services:consume",
            Permission::RecordsWrite => "records:write",
            Permission::BlobsSeed => "blobs:seed",
            Permission::RpcCall => "rpc:call",
            Permission::RoutesPublish => "routes:publish",
            Permission::RoutesSubscribe => "routes:subscribe",
            Permission::All => "all",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = PermissionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| PermissionError(s.to_string()))
    }
}

/// A set of permissions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Permissions {
    known: BTreeSet<Permission>,
    unknown: BTreeSet<String>,
}

impl Permissions {
    /// No permissions.
    pub fn new() -> Permissions {
        Permissions::default()
    }

    /// Just `all`.
    pub fn all() -> Permissions {
        [Permission::All].into_iter().collect()
    }

    /// Adds a permission.
    pub fn insert(&mut self, p: Permission) {
        self.known.insert(p);
    }

    /// Whether `p` is listed itself (without the `all` shortcut).
    pub fn contains(&self, p: Permission) -> bool {
        self.known.contains(&p)
    }

    /// Whether this set grants `p`: it lists `p` or `all`.
    pub fn allows(&self, p: Permission) -> bool {
        self.known.contains(&p) || self.known.contains(&Permission::All)
    }

    /// The known permissions listed.
    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.known.iter().copied()
    }

    /// Names from a newer mcc that this build does not know; they grant nothing.
    pub fn unknown(&self) -> impl Iterator<Item = &str> + '_ {
        self.unknown.iter().map(String::as_str)
    }

    /// Whether nothing is listed (known or unknown).
    pub fn is_empty(&self) -> bool {
        self.known.is_empty() && self.unknown.is_empty()
    }

    /// Number of entries listed (known and unknown).
    pub fn len(&self) -> usize {
        self.known.len() + self.unknown.len()
    }

    /// All names listed: known ones first, then unknown ones.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        let known = self.known.iter().map(|p| -> &str { p.as_str() });
        known.chain(self.unknown())
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        // Limits hold by construction: at most 6 known names, unknown ones only from decoding.
        let names: Vec<&str> = self.names().collect();
        let n = names.len().min(MAX_PERMISSIONS);
        w.u8(n as u8);
        for name in &names[..n] {
            w.short(name.as_bytes());
        }
    }

    pub(crate) fn check_limits(&self) -> Result<(), crate::SignError> {
        if self.len() > MAX_PERMISSIONS {
            return Err(crate::SignError::TooLarge {
                field: "permissions",
                len: self.len(),
                max: MAX_PERMISSIONS,
            });
        }
        Ok(())
    }

    /// Reads permissions leniently: unknown but well-formed names are kept.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Permissions, DecodeError> {
        let count = usize::from(r.u8("permission count")?);
        if count > MAX_PERMISSIONS {
            return Err(r.invalid(
                "permission count",
                format!("{count} entries (limit {MAX_PERMISSIONS})"),
            ));
        }
        let mut out = Permissions::new();
        for _ in 0..count {
            let raw = r.short("permission", MAX_PERMISSION_LEN)?;
            let well_formed = raw.iter().all(|b| b.is_ascii_graphic() && *b != b',');
            let name = match std::str::from_utf8(raw) {
                Ok(name) if well_formed => name,
                _ => return Err(r.invalid("permission", "not a printable ASCII name")),
            };
            match Permission::ALL.into_iter().find(|p| p.as_str() == name) {
                Some(p) => {
                    out.known.insert(p);
                }
                None => {
                    out.unknown.insert(name.to_string());
                }
            }
        }
        Ok(out)
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Permissions {
            known: iter.into_iter().collect(),
            unknown: BTreeSet::new(),
        }
    }
}

/// Parses user input strictly: names separated by commas and/or whitespace, for example
/// `"services:provide, rpc:call"`. An empty string is the empty set.
impl FromStr for Permissions {
    type Err = PermissionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(Permission::from_str)
            .collect()
    }
}

/// Comma-separated names, unknown ones included, e.g. `services:provide,rpc:call`.
impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for name in self.names() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(name)?;
        }
        Ok(())
    }
}
