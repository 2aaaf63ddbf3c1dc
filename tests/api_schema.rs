//! The REST API against its OpenAPI document: regressions of what schemathesis found
//! (`.ci/schemathesis.sh` runs schemathesis itself against two nodes in CI). One in-process node
//! serves the real router on 127.0.0.1.

mod common {
    pub mod inproc;
}

use anyhow::{Context, Result};
use common::inproc::{TestNode, spawn_nodes};
use reqwest::StatusCode;

/// A node with the API served on 127.0.0.1 port 0: the node, its API's base URL.
async fn node_with_api() -> Result<(TestNode, String)> {
    let node = spawn_nodes(1, |_, _| {}).await?.remove(0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bound = listener.local_addr()?;
    let config = mcc::api::ApiConfig {
        bound: Some(bound),
        ..Default::default()
    };
    let router = mcc::api::router(node.node.clone(), &config);
    tokio::spawn(mcc::api::serve(listener, router, std::future::pending()));
    Ok((node, format!("http://{bound}")))
}

/// The node still answers (its event loop did not die).
async fn alive(http: &reqwest::Client, base: &str) -> Result<()> {
    let resp = http.get(format!("{base}/api/v1/node")).send().await?;
    anyhow::ensure!(resp.status() == StatusCode::OK, "node: {}", resp.status());
    Ok(())
}

async fn status_and_error(resp: reqwest::Response) -> Result<(StatusCode, String)> {
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.context("a JSON body")?;
    Ok((
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
    ))
}

/// A TTL past what an `Instant` holds panicked the event loop: every later request got 503.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_ttl_past_a_year_is_400_and_the_node_lives_on() -> Result<()> {
    let (_node, base) = node_with_api().await?;
    let http = reqwest::Client::new();
    let resp = http
        .put(format!(
            "{base}/api/v1/records/mcc/ttl?ttl=9223372036854775808"
        ))
        .body("x")
        .send()
        .await?;
    let (status, error) = status_and_error(resp).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error.contains("ttl"), "{error}");
    alive(&http, &base).await?;
    // The longest TTL allowed is stored.
    let resp = http
        .put(format!("{base}/api/v1/records/mcc/ttl?ttl=31536000"))
        .body("x")
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.text().await);
    alive(&http, &base).await
}

/// `POST /blobs` without a body stored an empty blob.
#[tokio::test(flavor = "multi_thread")]
async fn a_blob_without_a_body_is_refused() -> Result<()> {
    let (_node, base) = node_with_api().await?;
    let http = reqwest::Client::new();
    let resp = http.post(format!("{base}/api/v1/blobs")).send().await?;
    let (status, error) = status_and_error(resp).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error.contains("empty"), "{error}");
    let list = http.get(format!("{base}/api/v1/blobs")).send().await?;
    let list: Vec<serde_json::Value> = list.json().await?;
    assert!(list.is_empty(), "stored anyway: {list:?}");
    let resp = http
        .post(format!("{base}/api/v1/blobs"))
        .body("some bytes")
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::CREATED);
    Ok(())
}

/// JSON bodies: an array was read as the struct (`[null, null]` called an RPC); a missing
/// content type and a wrong shape get the documented 415 and 422.
#[tokio::test(flavor = "multi_thread")]
async fn json_bodies_are_objects_with_the_documented_errors() -> Result<()> {
    let (_node, base) = node_with_api().await?;
    let http = reqwest::Client::new();
    let post = |path: &str, body: &'static str, json: bool| {
        let mut req = http.post(format!("{base}/api/v1/{path}")).body(body);
        if json {
            req = req.header("content-type", "application/json");
        }
        req.send()
    };
    let (status, error) = status_and_error(post("rpc/echo", "[null, null]", true).await?).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let (status, _) = status_and_error(post("echo", r#"{"message":"hi"}"#, false).await?).await?;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = status_and_error(post("peers", "{}", true).await?).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = status_and_error(post("peers", "{", true).await?).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let resp = post("echo", r#"{"message":"hi"}"#, true).await?;
    assert_eq!(resp.status(), StatusCode::OK);

    // Every operation with a JSON body documents these statuses.
    let doc: serde_json::Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await?
        .json()
        .await?;
    let echo = &doc["paths"]["/api/v1/echo"]["post"]["responses"];
    for status in ["400", "413", "415", "422"] {
        assert!(echo.get(status).is_some(), "POST /echo lacks {status}");
    }
    Ok(())
}

/// A removed service was still served: `GET /services/{name}/providers` answered 200 `[]`.
#[tokio::test(flavor = "multi_thread")]
async fn the_providers_of_a_removed_service_are_not_found() -> Result<()> {
    let (_node, base) = node_with_api().await?;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/api/v1/services"))
        .json(&serde_json::json!({"name": "web", "address": "tcp://127.0.0.1:5000"}))
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let providers = format!("{base}/api/v1/services/web/providers?local=true");
    assert_eq!(http.get(&providers).send().await?.status(), StatusCode::OK);
    let resp = http
        .delete(format!("{base}/api/v1/services/web"))
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, error) = status_and_error(http.get(&providers).send().await?).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    // The typed client still reads "none" as an empty list.
    let client = mcc::client::Client::new(base.clone());
    assert!(client.stored_providers("web").await?.is_empty());
    Ok(())
}

/// The query parameters were documented as path parameters, and names had no rules.
#[tokio::test(flavor = "multi_thread")]
async fn the_document_has_query_parameters_and_name_rules() -> Result<()> {
    let (_node, base) = node_with_api().await?;
    let doc: serde_json::Value = reqwest::get(format!("{base}/api/v1/openapi.json"))
        .await?
        .json()
        .await?;
    let params = doc["paths"]["/api/v1/services/{name}/providers"]["get"]["parameters"]
        .as_array()
        .context("parameters")?;
    let place = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["in"].clone())
    };
    assert_eq!(place("local"), Some("query".into()));
    let name = params
        .iter()
        .find(|p| p["name"] == "name")
        .context("name")?;
    assert_eq!(name["schema"]["pattern"], "^[a-z0-9][a-z0-9._-]*$");
    assert_eq!(name["schema"]["maxLength"], 128);
    let cid = &doc["paths"]["/api/v1/blobs/{cid}"]["get"]["parameters"][0]["schema"];
    assert!(
        cid["pattern"]
            .as_str()
            .is_some_and(|p| p.starts_with("^baf"))
    );
    Ok(())
}

/// `GET /routes/{route}` (an undeclared method) answered 400 in text for a query it does not
/// take, or 404: it is a 405 that names the method the path takes.
#[tokio::test(flavor = "multi_thread")]
async fn a_get_of_a_route_is_method_not_allowed() -> Result<()> {
    let (_node, base) = node_with_api().await?;
    let resp = reqwest::get(format!("{base}/api/v1/routes/sensors/temp?wait_ms=5")).await?;
    assert_eq!(
        resp.headers().get("allow").map(|v| v.as_bytes()),
        Some(&b"POST"[..])
    );
    let (status, _) = status_and_error(resp).await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    Ok(())
}
