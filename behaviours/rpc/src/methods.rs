//! The registry of RPC methods.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    panic::AssertUnwindSafe,
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use futures::{FutureExt, future::BoxFuture};
use libp2p::PeerId;
use serde_json::Value;

use crate::{ErrorCode, RpcError};

/// The future a method handler returns, boxed.
pub type HandlerFuture = BoxFuture<'static, Result<Value, RpcError>>;

/// Name of the built-in method that returns its params unchanged.
pub const ECHO_METHOD: &str = "echo";

type DynHandler = Arc<dyn Fn(PeerId, Value) -> HandlerFuture + Send + Sync>;

/// Registry of RPC methods.
///
/// Cheap to clone: clones share one registry, so methods can be registered or removed at any
/// time, before or after a [`Behaviour`](crate::Behaviour) is built with it.
///
/// A handler receives the calling peer and the request's `params` and returns a future. A
/// handler that panics (when called or while polled) is answered with an
/// [`ErrorCode::Internal`] error instead of taking the node down.
#[derive(Clone)]
pub struct Methods {
    inner: Arc<RwLock<HashMap<String, DynHandler>>>,
}

impl Default for Methods {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Methods")
            .field("names", &self.names())
            .finish()
    }
}

impl Methods {
    /// A registry holding only the built-in `"echo"` method, which returns its params unchanged.
    pub fn new() -> Self {
        let methods = Self {
            inner: Arc::default(),
        };
        methods.register(ECHO_METHOD, |_peer, params| async move { Ok(params) });
        methods
    }

    /// Registers `handler` under `name`, replacing any method of that name.
    pub fn register<F, Fut>(&self, name: impl Into<String>, handler: F)
    where
        F: Fn(PeerId, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        let handler: DynHandler = Arc::new(move |peer, params| handler(peer, params).boxed());
        self.write().insert(name.into(), handler);
    }

    /// Removes the method `name`; returns whether it was registered.
    pub fn unregister(&self, name: &str) -> bool {
        self.write().remove(name).is_some()
    }

    /// Names of all registered methods, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// Whether a method called `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// Runs method `method` locally as if `caller` had called it (used by the node to answer
    /// itself). The future fails with [`ErrorCode::MethodNotFound`] if there is no such method.
    pub fn invoke(&self, caller: PeerId, method: &str, params: Value) -> HandlerFuture {
        match self.lookup(method) {
            Some(handler) => run(&handler, caller, method, params),
            None => futures::future::ready(Err(method_not_found(method))).boxed(),
        }
    }

    /// The handler of `name`, if registered; the lock is released before returning.
    pub(crate) fn lookup(&self, name: &str) -> Option<DynHandler> {
        self.read().get(name).cloned()
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, DynHandler>> {
        // The map is never left half-updated, so a poisoned lock is still consistent.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, DynHandler>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The error for a call to an unknown method.
pub(crate) fn method_not_found(method: &str) -> RpcError {
    RpcError::new(
        ErrorCode::MethodNotFound,
        format!("no method named {:?}", crate::behaviour::truncated(method)),
    )
}

/// Calls `handler`, turning a panic (in the call or in the returned future) into an
/// [`ErrorCode::Internal`] error.
pub(crate) fn run(
    handler: &DynHandler,
    caller: PeerId,
    method: &str,
    params: Value,
) -> HandlerFuture {
    let future = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(caller, params))) {
        Ok(future) => future,
        Err(_) => {
            tracing::error!(method = %crate::behaviour::truncated(method), "RPC handler panicked");
            return futures::future::ready(Err(handler_panicked())).boxed();
        }
    };
    let method = crate::behaviour::truncated(method).to_owned();
    AssertUnwindSafe(future)
        .catch_unwind()
        .map(move |outcome| {
            outcome.unwrap_or_else(|_| {
                tracing::error!(%method, "RPC handler panicked");
                Err(handler_panicked())
            })
        })
        .boxed()
}

fn handler_panicked() -> RpcError {
    RpcError::internal("handler panicked")
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use serde_json::json;

    use super::*;

    #[test]
    fn new_has_echo_and_echo_returns_params() {
        let methods = Methods::new();
        assert_eq!(methods.names(), vec!["echo".to_owned()]);
        let params = json!({"x": [1, 2, 3]});
        let out = block_on(methods.invoke(PeerId::random(), "echo", params.clone()));
        assert_eq!(out, Ok(params));
    }

    #[test]
    fn register_replace_unregister() {
        let methods = Methods::default();
        let shared = methods.clone();
        shared.register("b", |_, _| async { Ok(json!(1)) });
        shared.register(
            "a",
            |peer: PeerId, _| async move { Ok(json!(peer.to_string())) },
        );
        assert_eq!(methods.names(), vec!["a", "b", "echo"]);
        assert!(methods.contains("a"));

        let caller = PeerId::random();
        assert_eq!(
            block_on(methods.invoke(caller, "a", Value::Null)),
            Ok(json!(caller.to_string()))
        );

        methods.register("b", |_, _| async { Ok(json!(2)) });
        assert_eq!(
            block_on(methods.invoke(caller, "b", Value::Null)),
            Ok(json!(2))
        );

        assert!(methods.unregister("b"));
        assert!(!methods.unregister("b"));
        assert!(!shared.contains("b"));
        let err = block_on(methods.invoke(caller, "b", Value::Null)).unwrap_err();
        assert_eq!(err.code, ErrorCode::MethodNotFound);
    }

    #[test]
    fn panicking_handlers_become_internal_errors() {
        let methods = Methods::new();
        methods.register("panic_now", |_, params: Value| {
            assert!(!params.is_null(), "boom");
            futures::future::ready(Ok(params))
        });
        methods.register("panic_later", |_, params: Value| async move {
            assert!(!params.is_null(), "boom");
            Ok(params)
        });
        for name in ["panic_now", "panic_later"] {
            let err = block_on(methods.invoke(PeerId::random(), name, Value::Null)).unwrap_err();
            assert_eq!(err.code, ErrorCode::Internal, "{name}");
        }
        // The registry still works afterwards.
        assert_eq!(
            block_on(methods.invoke(PeerId::random(), "echo", json!(7))),
            Ok(json!(7))
        );
    }
}
