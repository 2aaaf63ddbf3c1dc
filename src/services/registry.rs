//! Registered services and listeners, persisted in `<data-folder>/services.json`.
//!
//! Entries from the config file are registered at every start and are not written to the file;
//! entries added through the API or CLI are, atomically, on every change.
//!
//! Every change is all or nothing: it is applied to a copy, the copy is saved, and only then
//! does it replace the registry's state. When saving fails, the registry is left exactly as it
//! was (memory keeps matching disk) and the error is returned.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::fsutil;

/// File name inside the data folder.
pub const FILE: &str = "services.json";

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid service name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
    #[error("no service named {0}")]
    UnknownService(String),
    #[error("no listener {0}")]
    UnknownListener(String),
    #[error("a listener on {0} exists already")]
    DuplicateListener(String),
    #[error("cannot save {path}: {source}")]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl Error {
    /// The HTTP status of this error in the REST API.
    pub fn status(&self) -> StatusCode {
        use Error as R;
        match self {
            R::UnknownService(_) | R::UnknownListener(_) => StatusCode::NOT_FOUND,
            R::DuplicateListener(_) => StatusCode::CONFLICT,
            R::InvalidName { .. } | R::InvalidAddress { .. } => StatusCode::BAD_REQUEST,
            R::Save { .. } | R::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The kind of a service address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Tcp,
    Http,
}

/// A parsed `tcp://host:port` or `http://host:port` address (a bare `host:port` is TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub scheme: Scheme,
    /// `host:port`, as given (`localhost` allowed).
    pub host_port: String,
}

impl Address {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidAddress {
            address: s.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = match s.split_once("://") {
            Some(("tcp", r)) => (Scheme::Tcp, r),
            Some(("http", r)) => (Scheme::Http, r),
            Some((other, _)) => {
                return Err(bad(&format!("unknown scheme {other:?} (tcp or http)")));
            }
            None => (Scheme::Tcp, s),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(bad("only host:port, no path"));
        }
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(bad("bad port")),
        }
        Ok(Self {
            scheme,
            host_port: rest.to_string(),
        })
    }
}

/// Checks a service name: 1 to 128 bytes of lowercase letters, digits, `.`, `_`, `-`,
/// starting with a letter or digit (the rule of the forwarding protocol).
pub fn validate_name(name: &str) -> Result<(), Error> {
    mcc_forward::validate_name(name).map_err(|e| Error::InvalidName {
        name: name.to_string(),
        reason: match e {
            mcc_forward::OpenError::InvalidName(why) => why,
            other => other.to_string(),
        },
    })
}

/// A local service offered to the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Service {
    #[schema(example = "web")]
    pub name: String,
    /// `tcp://host:port` or `http://host:port`.
    #[schema(example = "tcp://localhost:1111")]
    pub address: String,
    /// Registered from the config file (not saved; registered again at every start).
    #[serde(default)]
    pub from_config: bool,
}

/// A local port forwarding to a service somewhere in the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Listener {
    pub id: String,
    pub service: String,
    /// Local address, `tcp://127.0.0.1:5000`.
    pub address: String,
    /// Only use this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(default)]
    pub from_config: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    #[serde(default)]
    services: Vec<Service>,
    #[serde(default)]
    listeners: Vec<Listener>,
}

#[derive(Debug, Default, Clone)]
struct State {
    services: BTreeMap<String, Service>,
    listeners: BTreeMap<String, Listener>,
}

/// The registry: shared, internally locked.
#[derive(Debug)]
pub struct Registry {
    path: Option<PathBuf>,
    state: Mutex<State>,
}

impl Registry {
    /// Loads the saved entries from `dir` (none when `dir` is `None` or the file is absent).
    pub fn load(dir: Option<PathBuf>) -> Result<Self, Error> {
        let path = dir.map(|d| d.join(FILE));
        let mut state = State::default();
        if let Some(p) = &path
            && let Ok(bytes) = std::fs::read(p)
        {
            let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            for s in saved.services {
                state.services.insert(s.name.clone(), s);
            }
            for l in saved.listeners {
                state.listeners.insert(l.id.clone(), l);
            }
        }
        Ok(Self {
            path,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, state: &State) -> Result<(), Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let saved = Saved {
            services: state
                .services
                .values()
                .filter(|s| !s.from_config)
                .cloned()
                .collect(),
            listeners: state
                .listeners
                .values()
                .filter(|l| !l.from_config)
                .cloned()
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&saved).map_err(|e| Error::Save {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        fsutil::write_atomic(path, &bytes, 0o600).map_err(|source| Error::Save {
            path: path.clone(),
            source,
        })
    }

    /// Applies `change` to a copy of the state, saves the copy and only then makes it the
    /// state: on any error (from `change` or from saving) nothing changes.
    fn update<T>(&self, change: impl FnOnce(&mut State) -> Result<T, Error>) -> Result<T, Error> {
        let mut st = self.lock();
        let mut next = st.clone();
        let out = change(&mut next)?;
        self.save(&next)?;
        *st = next;
        Ok(out)
    }

    /// Adds or replaces a service; returns the previous one. Nothing changes when saving fails.
    pub fn add_service(&self, service: Service) -> Result<Option<Service>, Error> {
        validate_name(&service.name)?;
        Address::parse(&service.address)?;
        self.update(|st| Ok(st.services.insert(service.name.clone(), service)))
    }

    /// Removes a service; returns it. Nothing changes when saving fails.
    pub fn remove_service(&self, name: &str) -> Result<Service, Error> {
        self.update(|st| {
            st.services
                .remove(name)
                .ok_or_else(|| Error::UnknownService(name.to_string()))
        })
    }

    pub fn service(&self, name: &str) -> Option<Service> {
        self.lock().services.get(name).cloned()
    }

    pub fn services(&self) -> Vec<Service> {
        self.lock().services.values().cloned().collect()
    }

    /// Adds a listener (its address must be new). Nothing changes when saving fails.
    pub fn add_listener(&self, listener: Listener) -> Result<(), Error> {
        validate_name(&listener.service)?;
        self.update(|st| {
            if st.listeners.values().any(|l| l.address == listener.address) {
                return Err(Error::DuplicateListener(listener.address));
            }
            st.listeners.insert(listener.id.clone(), listener);
            Ok(())
        })
    }

    /// Removes a listener; returns it. Nothing changes when saving fails.
    pub fn remove_listener(&self, id: &str) -> Result<Listener, Error> {
        self.update(|st| {
            st.listeners
                .remove(id)
                .ok_or_else(|| Error::UnknownListener(id.to_string()))
        })
    }

    pub fn listeners(&self) -> Vec<Listener> {
        self.lock().listeners.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = Address::parse("tcp://localhost:1111").unwrap();
        assert_eq!(
            (a.scheme, a.host_port.as_str()),
            (Scheme::Tcp, "localhost:1111")
        );
        assert_eq!(
            Address::parse("http://127.0.0.1:80/").unwrap().scheme,
            Scheme::Http
        );
        assert_eq!(Address::parse("10.0.0.1:22").unwrap().scheme, Scheme::Tcp);
        for bad in [
            "udp://x:1",
            "tcp://x",
            "tcp://:1",
            "http://h:0",
            "http://h:1/path",
            "tcp://h:99999",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(validate_name("web-1.api_v2").is_ok());
        for bad in ["", "Web", "-x", "a b", &"a".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn persists_runtime_entries_not_config_ones() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::load(Some(dir.path().to_path_buf())).unwrap();
        let svc = |name: &str, from_config| Service {
            name: name.into(),
            address: "tcp://localhost:1".into(),
            from_config,
        };
        r.add_service(svc("api", false)).unwrap();
        r.add_service(svc("cfg", true)).unwrap();
        r.add_listener(Listener {
            id: "l1".into(),
            service: "api".into(),
            address: "tcp://127.0.0.1:5000".into(),
            peer: None,
            from_config: false,
        })
        .unwrap();
        let again = Registry::load(Some(dir.path().to_path_buf())).unwrap();
        assert_eq!(again.services(), vec![svc("api", false)]);
        assert_eq!(again.listeners().len(), 1);
        again.remove_service("api").unwrap();
        assert!(matches!(
            again.remove_service("api"),
            Err(Error::UnknownService(_))
        ));
        assert!(
            Registry::load(Some(dir.path().to_path_buf()))
                .unwrap()
                .services()
                .is_empty()
        );
    }

    /// Makes every later save in `dir` fail: a non-empty directory where the file goes cannot
    /// be replaced by a rename (even by root). Returns a guard that undoes it.
    fn break_saving(dir: &std::path::Path) -> impl Drop {
        struct Fixed(PathBuf);
        impl Drop for Fixed {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let path = dir.join(FILE);
        let _ = std::fs::remove_file(&path);
        std::fs::create_dir_all(path.join("blocker")).unwrap();
        Fixed(path)
    }

    #[test]
    fn failed_saves_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::load(Some(dir.path().to_path_buf())).unwrap();
        let svc = |name: &str, port: u16| Service {
            name: name.into(),
            address: format!("tcp://localhost:{port}"),
            from_config: false,
        };
        let listener = |id: &str, port: u16| Listener {
            id: id.into(),
            service: "db".into(),
            address: format!("tcp://127.0.0.1:{port}"),
            peer: None,
            from_config: false,
        };
        r.add_service(svc("db", 1)).unwrap();
        r.add_listener(listener("l1", 5000)).unwrap();
        let services = r.services();
        let listeners = r.listeners();

        {
            let _broken = break_saving(dir.path());
            // A new service: not registered (the forward resolver must not serve it).
            assert!(matches!(
                r.add_service(svc("new", 2)),
                Err(Error::Save { .. })
            ));
            assert_eq!(r.service("new"), None);
            // A replaced service: the old address stays.
            assert!(matches!(
                r.add_service(svc("db", 3)),
                Err(Error::Save { .. })
            ));
            assert_eq!(r.service("db"), Some(svc("db", 1)));
            // A removed service: still there (and so still announced).
            assert!(matches!(r.remove_service("db"), Err(Error::Save { .. })));
            assert_eq!(r.service("db"), Some(svc("db", 1)));
            // A new listener: not kept.
            assert!(matches!(
                r.add_listener(listener("l2", 5001)),
                Err(Error::Save { .. })
            ));
            // A removed listener: still there.
            assert!(matches!(r.remove_listener("l1"), Err(Error::Save { .. })));
            assert_eq!(r.services(), services);
            assert_eq!(r.listeners(), listeners);
        }

        // Saving works again: memory and disk agree, without the failed changes.
        r.add_service(svc("later", 4)).unwrap();
        let again = Registry::load(Some(dir.path().to_path_buf())).unwrap();
        assert_eq!(again.services(), r.services());
        assert_eq!(again.listeners(), r.listeners());
        assert_eq!(
            again
                .services()
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["db", "later"]
        );
        assert_eq!(again.listeners(), listeners);
    }

    #[test]
    fn corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "{nope").unwrap();
        assert!(matches!(
            Registry::load(Some(dir.path().to_path_buf())),
            Err(Error::Corrupt { .. })
        ));
    }
}
