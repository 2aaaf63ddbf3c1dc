//! End-to-end tests: two swarms over the in-memory transport of libp2p-swarm-test.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use libp2p::{
    PeerId, StreamProtocol,
    swarm::{Swarm, SwarmEvent},
};
use libp2p_swarm_test::SwarmExt;
use mcc_rpc::{
    Behaviour, CallError, Config, ErrorCode, Event, Methods, OutboundRequestId, PROTOCOL_NAME,
    RpcError,
};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

fn new_swarm(config: Config, methods: Methods) -> Swarm<Behaviour> {
    Swarm::new_ephemeral_tokio(|_| Behaviour::new(config, methods))
}

/// A client connected to a server that runs in the background; the server's behaviour events
/// are forwarded to `server_events`.
struct Setup {
    client: Swarm<Behaviour>,
    server_id: PeerId,
    server_events: mpsc::UnboundedReceiver<Event>,
}

async fn setup(server_config: Config, server_methods: Methods, client_config: Config) -> Setup {
    let mut server = new_swarm(server_config, server_methods);
    let mut client = new_swarm(client_config, Methods::new());
    server.listen().with_memory_addr_external().await;
    client.connect(&mut server).await;
    let server_id = *server.local_peer_id();

    let (tx, server_events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(event) = server.select_next_some().await {
                // The receiver goes away when the test ends.
                if tx.send(event).is_err() {
                    return;
                }
            }
        }
    });
    Setup {
        client,
        server_id,
        server_events,
    }
}

/// Drives `client` until the response to `id` arrives.
async fn response_to(
    client: &mut Swarm<Behaviour>,
    id: OutboundRequestId,
) -> Result<Value, CallError> {
    loop {
        match client.next_behaviour_event().await {
            Event::OutboundResult {
                request_id, result, ..
            } if request_id == id => return result,
            Event::OutboundResult { request_id, .. } => {
                panic!("response to unexpected {request_id}")
            }
            _ => {}
        }
    }
}

/// Calls `method` on the server and waits for the outcome.
async fn call(setup: &mut Setup, method: &str, params: Value) -> Result<Value, CallError> {
    let id = setup
        .client
        .behaviour_mut()
        .call(&setup.server_id, method, params)
        .expect("request fits");
    response_to(&mut setup.client, id).await
}

fn remote_code(result: Result<Value, CallError>) -> ErrorCode {
    match result {
        Err(CallError::Remote(e)) => e.code,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

/// Next InboundAnswered / InboundFailure the server reports (with a deadline).
async fn next_server_event(setup: &mut Setup) -> Event {
    tokio::time::timeout(Duration::from_secs(10), setup.server_events.recv())
        .await
        .expect("server event within 10s")
        .expect("server still running")
}

#[tokio::test]
async fn echo_roundtrip() {
    let mut s = setup(Config::default(), Methods::new(), Config::default()).await;
    let client_id = *s.client.local_peer_id();
    let params = json!({
        "text": "grüße ✓",
        "list": [1, -2.5, null, true, {"nested": []}],
        "big": u64::MAX,
    });

    assert_eq!(call(&mut s, "echo", params.clone()).await.unwrap(), params);
    assert_eq!(
        call(&mut s, "echo", Value::Null).await.unwrap(),
        Value::Null
    );

    match next_server_event(&mut s).await {
        Event::InboundAnswered { peer, method, ok } => {
            assert_eq!(peer, client_id);
            assert_eq!(method, "echo");
            assert!(ok);
        }
        other => panic!("unexpected server event {other:?}"),
    }
}

#[tokio::test]
async fn method_registered_after_construction_sees_caller() {
    let methods = Methods::new();
    let mut s = setup(Config::default(), methods.clone(), Config::default()).await;
    let client_id = *s.client.local_peer_id();

    assert_eq!(
        remote_code(call(&mut s, "whoami", Value::Null).await),
        ErrorCode::MethodNotFound
    );

    methods.register("whoami", |caller: PeerId, params: Value| async move {
        Ok(json!({"caller": caller.to_string(), "params": params}))
    });
    let result = call(&mut s, "whoami", json!([1])).await.unwrap();
    assert_eq!(
        result,
        json!({"caller": client_id.to_string(), "params": [1]})
    );

    assert!(methods.unregister("whoami"));
    assert_eq!(
        remote_code(call(&mut s, "whoami", Value::Null).await),
        ErrorCode::MethodNotFound
    );
}

#[tokio::test]
async fn handler_error_is_propagated() {
    let methods = Methods::new();
    methods.register("deny", |_, _| async {
        Err::<Value, _>(RpcError::new(ErrorCode::Forbidden, "not for you"))
    });
    methods.register("need_number", |_, params: Value| async move {
        params
            .as_u64()
            .map(|n| json!(n * 2))
            .ok_or_else(|| RpcError::invalid_params("expected a number"))
    });
    let mut s = setup(Config::default(), methods, Config::default()).await;

    match call(&mut s, "deny", Value::Null).await {
        Err(CallError::Remote(e)) => {
            assert_eq!(e, RpcError::new(ErrorCode::Forbidden, "not for you"))
        }
        other => panic!("expected remote error, got {other:?}"),
    }
    assert_eq!(
        remote_code(call(&mut s, "need_number", json!("x")).await),
        ErrorCode::InvalidParams
    );
    assert_eq!(
        call(&mut s, "need_number", json!(21)).await.unwrap(),
        json!(42)
    );

    match next_server_event(&mut s).await {
        Event::InboundAnswered { method, ok, .. } => {
            assert_eq!(method, "deny");
            assert!(!ok);
        }
        other => panic!("unexpected server event {other:?}"),
    }
}

#[tokio::test]
async fn authorizer_from_config_refuses_before_the_handler_runs() {
    let ran = Arc::new(AtomicBool::new(false));
    let methods = Methods::new();
    {
        let ran = ran.clone();
        methods.register("secret", move |_, _| {
            ran.store(true, Ordering::SeqCst);
            async { Ok(json!("s3cret")) }
        });
    }
    let authorizer: mcc_rpc::Authorizer = Arc::new(|_peer: &PeerId, method: &str| {
        if method == "secret" {
            Err(RpcError::new(ErrorCode::Forbidden, "not you"))
        } else {
            Ok(())
        }
    });
    let server_config = Config::new().with_authorizer(authorizer);
    assert!(server_config.authorizer().is_some());
    let mut s = setup(server_config, methods, Config::default()).await;

    assert_eq!(
        remote_code(call(&mut s, "secret", Value::Null).await),
        ErrorCode::Forbidden
    );
    assert_eq!(call(&mut s, "echo", json!(1)).await.unwrap(), json!(1));
    assert!(!ran.load(Ordering::SeqCst), "the handler never ran");
}

#[tokio::test]
async fn error_code_of_a_newer_peer_reaches_the_caller_as_unknown() {
    let methods = Methods::new();
    // What a newer version would send: a code this one does not know.
    methods.register("new_code", |_, _| async {
        Err::<Value, _>(RpcError::new(
            ErrorCode::Unknown("quota_exceeded".into()),
            "come back tomorrow",
        ))
    });
    let mut s = setup(Config::default(), methods, Config::default()).await;
    match call(&mut s, "new_code", Value::Null).await {
        Err(CallError::Remote(e)) => {
            assert_eq!(e.code, ErrorCode::Unknown("quota_exceeded".into()));
            assert_eq!(e.message, "come back tomorrow");
        }
        other => panic!("expected the remote error, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_method_is_method_not_found() {
    let mut s = setup(Config::default(), Methods::new(), Config::default()).await;
    let long_name = "x".repeat(10_000);

    match call(&mut s, "no.such.method", json!({})).await {
        Err(CallError::Remote(e)) => {
            assert_eq!(e.code, ErrorCode::MethodNotFound);
            assert!(e.message.contains("no.such.method"), "{}", e.message);
        }
        other => panic!("expected MethodNotFound, got {other:?}"),
    }
    assert_eq!(
        remote_code(call(&mut s, &long_name, json!({})).await),
        ErrorCode::MethodNotFound
    );

    match next_server_event(&mut s).await {
        Event::InboundAnswered { method, ok, .. } => {
            assert_eq!(method, "no.such.method");
            assert!(!ok);
        }
        other => panic!("unexpected server event {other:?}"),
    }
    match next_server_event(&mut s).await {
        Event::InboundAnswered { method, .. } => {
            assert!(
                method.len() <= 128,
                "peer-chosen names are cut: {}",
                method.len()
            )
        }
        other => panic!("unexpected server event {other:?}"),
    }
}

#[tokio::test]
async fn oversized_request_is_refused_locally() {
    let mut s = setup(
        Config::default(),
        Methods::new(),
        Config::default().with_max_request_size(100),
    )
    .await;
    let params = json!("a".repeat(200));
    let expected_size = serde_json::to_vec(&json!({"method": "echo", "params": params}))
        .unwrap()
        .len();

    match s.client.behaviour_mut().call(&s.server_id, "echo", params) {
        Err(CallError::RequestTooLarge { size, max }) => {
            assert_eq!(size, expected_size);
            assert_eq!(max, 100);
        }
        other => panic!("expected RequestTooLarge, got {other:?}"),
    }
    // Nothing was sent, and small calls still work: the next response is for the small call.
    assert_eq!(
        call(&mut s, "echo", json!("small")).await.unwrap(),
        json!("small")
    );
}

#[tokio::test]
async fn request_over_the_servers_limit_fails_without_hanging() {
    let mut s = setup(
        Config::default().with_max_request_size(100),
        Methods::new(),
        Config::default(),
    )
    .await;
    match call(&mut s, "echo", json!("b".repeat(1000))).await {
        Err(CallError::Io(_)) => {}
        other => panic!("expected an i/o error, got {other:?}"),
    }
    assert_eq!(call(&mut s, "echo", json!(1)).await.unwrap(), json!(1));
}

#[tokio::test]
async fn oversized_response_becomes_too_large() {
    let methods = Methods::new();
    methods.register("big_error", |_, _| async {
        Err::<Value, _>(RpcError::internal("e".repeat(5000)))
    });
    let mut s = setup(
        Config::default().with_max_response_size(1000),
        methods,
        Config::default(),
    )
    .await;

    match call(&mut s, "echo", json!("c".repeat(2000))).await {
        Err(CallError::Remote(e)) => {
            assert_eq!(e.code, ErrorCode::TooLarge);
            assert!(e.message.contains("1000"), "{}", e.message);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(
        remote_code(call(&mut s, "big_error", Value::Null).await),
        ErrorCode::TooLarge
    );
    let fits = json!("c".repeat(900));
    assert_eq!(call(&mut s, "echo", fits.clone()).await.unwrap(), fits);

    match next_server_event(&mut s).await {
        Event::InboundAnswered { method, ok, .. } => {
            assert_eq!(method, "echo");
            assert!(!ok, "a too-large result is answered with an error");
        }
        other => panic!("unexpected server event {other:?}"),
    }
}

#[tokio::test]
async fn oversized_response_is_rejected_by_the_client() {
    let mut s = setup(
        Config::default(),
        Methods::new(),
        Config::default().with_max_response_size(1000),
    )
    .await;
    match call(&mut s, "echo", json!("d".repeat(2000))).await {
        Err(CallError::Io(msg)) => assert!(msg.contains("1000"), "{msg}"),
        other => panic!("expected an i/o error, got {other:?}"),
    }
}

#[tokio::test]
async fn busy_when_all_inbound_slots_are_taken() {
    let methods = Methods::new();
    let release = Arc::new(Notify::new());
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    {
        let release = release.clone();
        methods.register("slow", move |_, _| {
            let release = release.clone();
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(());
                release.notified().await;
                Ok(json!("done"))
            }
        });
    }
    let mut s = setup(
        Config::default().with_max_concurrent_inbound(1),
        methods,
        Config::default(),
    )
    .await;

    let slow = s
        .client
        .behaviour_mut()
        .call(&s.server_id, "slow", Value::Null)
        .unwrap();
    // Keep the client running until the server has started the slow handler.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                _ = started_rx.recv() => return,
                event = s.client.select_next_some() => {
                    assert!(!matches!(event, SwarmEvent::Behaviour(_)), "{event:?}");
                }
            }
        }
    })
    .await
    .expect("slow handler started");

    assert_eq!(
        remote_code(call(&mut s, "echo", json!(1)).await),
        ErrorCode::Busy
    );

    release.notify_one();
    assert_eq!(
        response_to(&mut s.client, slow).await.unwrap(),
        json!("done")
    );
    // The slot is free again.
    assert_eq!(call(&mut s, "echo", json!(2)).await.unwrap(), json!(2));
}

/// Sets the flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn timeout_reported_on_both_sides_and_handler_cancelled() {
    let methods = Methods::new();
    let dropped = Arc::new(AtomicBool::new(false));
    {
        let dropped = dropped.clone();
        methods.register("never", move |_, _| {
            let guard = DropFlag(dropped.clone());
            async move {
                let _guard = guard;
                futures::future::pending::<()>().await;
                Ok(Value::Null)
            }
        });
    }
    // The client gives up first; had the server timed out first, it would drop the stream and
    // the client would see an i/o error instead of a timeout.
    let mut s = setup(
        Config::default()
            .with_request_timeout(Duration::from_millis(800))
            .with_max_concurrent_inbound(1),
        methods,
        Config::default().with_request_timeout(Duration::from_millis(300)),
    )
    .await;
    let client_id = *s.client.local_peer_id();

    match call(&mut s, "never", Value::Null).await {
        Err(CallError::Timeout) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    match next_server_event(&mut s).await {
        Event::InboundFailure { peer, error } => {
            assert_eq!(peer, client_id);
            assert!(!error.to_string().is_empty());
        }
        other => panic!("unexpected server event {other:?}"),
    }
    // The handler was dropped, and its slot (the only one) is free again.
    let answered = call(&mut s, "echo", json!("after")).await;
    assert!(dropped.load(Ordering::SeqCst), "handler future dropped");
    assert_eq!(answered.unwrap(), json!("after"));
}

#[tokio::test]
async fn panicking_handler_is_internal_error() {
    let methods = Methods::new();
    methods.register("panic", |_, params: Value| async move {
        assert!(params.is_null(), "handler bug");
        Ok(params)
    });
    let mut s = setup(Config::default(), methods, Config::default()).await;
    assert_eq!(
        remote_code(call(&mut s, "panic", json!(1)).await),
        ErrorCode::Internal
    );
    assert_eq!(call(&mut s, "echo", json!(1)).await.unwrap(), json!(1));
}

#[tokio::test]
async fn unsupported_protocol() {
    let mut s = setup(
        Config::default().with_protocol(StreamProtocol::new("/other/rpc/1.0.0")),
        Methods::new(),
        Config::default(),
    )
    .await;
    match call(&mut s, "echo", Value::Null).await {
        Err(CallError::UnsupportedProtocol(p)) => assert_eq!(p, PROTOCOL_NAME.as_ref()),
        other => panic!("expected UnsupportedProtocol, got {other:?}"),
    }
}

#[tokio::test]
async fn call_to_unknown_peer_is_dial_failure() {
    let mut client = new_swarm(Config::default(), Methods::new());
    let stranger = PeerId::random();
    let id = client
        .behaviour_mut()
        .call(&stranger, "echo", Value::Null)
        .unwrap();
    match client.next_behaviour_event().await {
        Event::OutboundResult {
            peer,
            request_id,
            result,
        } => {
            assert_eq!(peer, stranger);
            assert_eq!(request_id, id);
            assert!(matches!(result, Err(CallError::DialFailure)), "{result:?}");
        }
        other => panic!("unexpected event {other:?}"),
    }
}

#[tokio::test]
async fn many_concurrent_calls_are_all_answered() {
    const CALLS: u64 = 100;
    let methods = Methods::new();
    methods.register("square", |_, params: Value| async move {
        let n = params
            .as_u64()
            .ok_or_else(|| RpcError::invalid_params("n"))?;
        tokio::task::yield_now().await;
        Ok(json!(n * n))
    });
    let mut s = setup(Config::default(), methods, Config::default()).await;

    let mut expected: HashMap<OutboundRequestId, u64> = HashMap::new();
    for n in 0..CALLS {
        let id = s
            .client
            .behaviour_mut()
            .call(&s.server_id, "square", json!(n))
            .unwrap();
        assert!(expected.insert(id, n * n).is_none(), "ids are unique");
    }
    while !expected.is_empty() {
        match s.client.next_behaviour_event().await {
            Event::OutboundResult {
                request_id, result, ..
            } => {
                let want = expected.remove(&request_id).expect("one response per call");
                assert_eq!(result.unwrap(), json!(want));
            }
            other => panic!("unexpected event {other:?}"),
        }
    }

    let mut answered = 0;
    while answered < CALLS {
        if let Event::InboundAnswered {
            ok: true, method, ..
        } = next_server_event(&mut s).await
        {
            assert_eq!(method, "square");
            answered += 1;
        }
    }
}
