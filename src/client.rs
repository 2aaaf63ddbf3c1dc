//! A typed client of the REST API, used by the CLI (and by tests). The stream endpoints
//! (HTTP upgrades to raw bytes) are in `client/stream.rs`.

mod routes;
mod stream;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::types::*;

/// Errors talking to a node's API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no mcc node is running at {url} (start one with `mcc`, or pass --api URL)")]
    NotRunning { url: String },
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    #[error("request to {url} failed: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("unexpected answer from {url}: {reason}")]
    Decode { url: String, reason: String },
}

impl Error {
    /// HTTP status of an API error, if it was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Client of one node's REST API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// Without the total timeout: stream upgrades wait for a peer and then last.
    streams: reqwest::Client,
}

fn http_client(headers: reqwest::header::HeaderMap) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .default_headers(headers)
        .build()
        .unwrap_or_default()
}

/// HTTP/1.1 only (upgrades), no total timeout (a listener waits as long as it takes).
fn stream_client(headers: reqwest::header::HeaderMap) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .http1_only()
        .default_headers(headers)
        .build()
        .unwrap_or_default()
}

impl Client {
    /// `base` is the node's URL, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_string();
        Self {
            base,
            http: http_client(reqwest::header::HeaderMap::new()),
            streams: stream_client(reqwest::header::HeaderMap::new()),
        }
    }

    /// Sends `token` as `Authorization: Bearer` with every request (`--api-token`).
    pub fn with_token(mut self, token: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")) {
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        self.http = http_client(headers.clone());
        self.streams = stream_client(headers);
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: String,
    ) -> Result<T, Error> {
        let (_, bytes) = self.send_raw(req, url.clone()).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            url,
            reason: e.to_string(),
        })
    }

    /// Sends a request; a success gives headers and body, anything else an [`Error`].
    async fn send_raw(
        &self,
        req: reqwest::RequestBuilder,
        url: String,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), Error> {
        let resp = req.send().await.map_err(|source| {
            if source.is_connect() {
                Error::NotRunning {
                    url: self.base.clone(),
                }
            } else {
                Error::Http {
                    url: url.clone(),
                    source,
                }
            }
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|source| Error::Http {
            url: url.clone(),
            source,
        })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(Error::Api {
                status: status.as_u16(),
                message,
            });
        }
        Ok((headers, bytes.to_vec()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let url = format!("{}{path}", self.base);
        self.send(self.http.get(&url), url).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let url = format!("{}{path}", self.base);
        self.send(self.http.post(&url).json(body), url).await
    }

    pub async fn health(&self) -> Result<Health, Error> {
        self.get("/healthz").await
    }

    pub async fn node(&self) -> Result<NodeInfo, Error> {
        self.get("/api/v1/node").await
    }

    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        self.get("/api/v1/peers").await
    }

    pub async fn addrbook(&self) -> Result<Vec<AddrBookEntry>, Error> {
        self.get("/api/v1/addrbook").await
    }

    /// Pins (`persistent`) or unpins a peer id or address.
    pub async fn pin(&self, target: &str, persistent: bool) -> Result<AddrBookEntry, Error> {
        let path = if persistent {
            "/api/v1/addrbook/pin"
        } else {
            "/api/v1/addrbook/unpin"
        };
        self.post(
            path,
            &PinRequest {
                target: target.to_string(),
            },
        )
        .await
    }

    pub async fn dial(&self, addr: &str) -> Result<DialResponse, Error> {
        self.post(
            "/api/v1/peers",
            &DialRequest {
                addr: addr.to_string(),
            },
        )
        .await
    }

    pub async fn echo(&self, message: &str, peer: Option<&str>) -> Result<EchoResponse, Error> {
        self.post(
            "/api/v1/echo",
            &EchoRequest {
                message: message.to_string(),
                peer: peer.map(str::to_string),
            },
        )
        .await
    }

    /// Stores a record; `key` is namespaced (`/mcc/hello` or `mcc/hello`).
    pub async fn put_record(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl_secs: Option<u64>,
    ) -> Result<PutOutcome, Error> {
        let mut url = format!("{}/api/v1/records/{}", self.base, key_path(key));
        if let Some(t) = ttl_secs {
            url.push_str(&format!("?ttl={t}"));
        }
        let req = self
            .http
            .put(&url)
            .header("content-type", "application/octet-stream")
            .body(value);
        self.send(req, url).await
    }

    /// Reads a record's value.
    pub async fn get_record(&self, key: &str) -> Result<Vec<u8>, Error> {
        let url = format!("{}/api/v1/records/{}", self.base, key_path(key));
        Ok(self.send_raw(self.http.get(&url), url).await?.1)
    }

    /// This node's own copy of a record (no network lookup).
    pub async fn get_local_record(&self, key: &str) -> Result<Vec<u8>, Error> {
        let url = format!("{}/api/v1/records/{}?local=true", self.base, key_path(key));
        Ok(self.send_raw(self.http.get(&url), url).await?.1)
    }

    /// Resolves a DID to its signed document.
    pub async fn get_did(&self, did: &str) -> Result<SignedDocumentSchema, Error> {
        self.get(&format!("/api/v1/dids/{}?proof=true", urlencode(did)))
            .await
    }

    /// Publishes a signed DID document.
    pub async fn put_did(&self, doc: &SignedDocumentSchema) -> Result<PutOutcome, Error> {
        let path = format!(
            "/api/v1/dids/{}",
            urlencode(
                doc.document
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            )
        );
        let url = format!("{}{path}", self.base);
        self.send(self.http.put(&url).json(doc), url).await
    }

    /// Hands a CA-signed revocation list (its base64 text) to the node, which checks it and
    /// spreads it through the mesh.
    pub async fn publish_revocations(&self, list_base64: &str) -> Result<Value, Error> {
        let url = format!("{}/api/v1/admission/revocations", self.base);
        let req = self
            .http
            .put(&url)
            .header("content-type", "text/plain")
            .body(list_base64.trim().to_string());
        self.send(req, url).await
    }

    pub async fn services(&self) -> Result<Vec<Service>, Error> {
        self.get("/api/v1/services").await
    }

    pub async fn add_service(&self, name: &str, address: &str) -> Result<Service, Error> {
        self.post(
            "/api/v1/services",
            &ServiceRequest {
                name: name.to_string(),
                address: address.to_string(),
            },
        )
        .await
    }

    pub async fn remove_service(&self, name: &str) -> Result<Service, Error> {
        let url = format!("{}/api/v1/services/{}", self.base, urlencode(name));
        self.send(self.http.delete(&url), url).await
    }

    /// The providers of a service; none (the API's 404) is an empty list.
    pub async fn providers(&self, name: &str) -> Result<Vec<Provider>, Error> {
        none_is_empty(
            self.get(&format!("/api/v1/services/{}/providers", urlencode(name)))
                .await,
        )
    }

    /// The provider records of a service this node stores itself (no lookup).
    pub async fn stored_providers(&self, name: &str) -> Result<Vec<Provider>, Error> {
        none_is_empty(
            self.get(&format!(
                "/api/v1/services/{}/providers?local=true",
                urlencode(name)
            ))
            .await,
        )
    }

    pub async fn listeners(&self) -> Result<Vec<Listener>, Error> {
        self.get("/api/v1/listeners").await
    }

    pub async fn add_listener(
        &self,
        service: &str,
        address: &str,
        peer: Option<&str>,
    ) -> Result<Listener, Error> {
        self.post(
            "/api/v1/listeners",
            &ListenerRequest {
                service: service.to_string(),
                address: address.to_string(),
                peer: peer.map(str::to_string),
            },
        )
        .await
    }

    pub async fn remove_listener(&self, id: &str) -> Result<Listener, Error> {
        let url = format!("{}/api/v1/listeners/{}", self.base, urlencode(id));
        self.send(self.http.delete(&url), url).await
    }

    /// Uploads a file as a blob; `progress` gets the bytes sent so far.
    pub async fn add_blob(
        &self,
        path: &std::path::Path,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<BlobInfo, Error> {
        use futures::StreamExt;
        let url = format!("{}/api/v1/blobs", self.base);
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::Decode {
                url: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let mut sent = 0u64;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).map(move |chunk| {
            if let Ok(c) = &chunk {
                sent += c.len() as u64;
                progress(sent);
            }
            chunk
        });
        let req = self
            .http
            .post(&url)
            .header("content-type", "application/octet-stream")
            .timeout(Duration::from_secs(24 * 3600))
            .body(reqwest::Body::wrap_stream(stream));
        self.send(req, url).await
    }

    /// Fetches a blob onto the node from its seeders; `progress` gets each progress line.
    pub async fn fetch_blob(
        &self,
        cid: &str,
        mut progress: impl FnMut(&Value),
    ) -> Result<FetchSummary, Error> {
        use futures::StreamExt;
        let url = format!("{}/api/v1/blobs/{}/fetch", self.base, urlencode(cid));
        let resp = self
            .start(
                self.http.post(&url).timeout(Duration::from_secs(24 * 3600)),
                &url,
            )
            .await?;
        let mut lines = Vec::new();
        let mut body = resp.bytes_stream();
        let mut last = None;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| Error::Http {
                url: url.clone(),
                source,
            })?;
            lines.extend_from_slice(&chunk);
            while let Some(i) = lines.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = lines.drain(..=i).collect();
                if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                    progress(&v);
                    last = Some(v);
                }
            }
        }
        let last = last.ok_or_else(|| Error::Decode {
            url: url.clone(),
            reason: "no answer".into(),
        })?;
        if let Some(e) = last.get("error").and_then(Value::as_str) {
            return Err(Error::Api {
                status: 502,
                message: e.to_string(),
            });
        }
        serde_json::from_value(last).map_err(|e| Error::Decode {
            url,
            reason: e.to_string(),
        })
    }

    /// Downloads a blob into `out`; `progress` gets (bytes so far, total).
    pub async fn download_blob<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        cid: &str,
        out: &mut W,
        mut progress: impl FnMut(u64, Option<u64>),
    ) -> Result<u64, Error> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let url = format!("{}/api/v1/blobs/{}", self.base, urlencode(cid));
        let resp = self
            .start(
                self.http.get(&url).timeout(Duration::from_secs(24 * 3600)),
                &url,
            )
            .await?;
        let total = resp.content_length();
        let mut n = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| Error::Http {
                url: url.clone(),
                source,
            })?;
            out.write_all(&chunk).await.map_err(|e| Error::Decode {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            n += chunk.len() as u64;
            progress(n, total);
        }
        out.flush().await.map_err(|e| Error::Decode {
            url,
            reason: e.to_string(),
        })?;
        Ok(n)
    }

    pub async fn blobs(&self) -> Result<Vec<BlobInfo>, Error> {
        self.get("/api/v1/blobs").await
    }

    pub async fn delete_blob(&self, cid: &str) -> Result<(), Error> {
        let url = format!("{}/api/v1/blobs/{}", self.base, urlencode(cid));
        self.send_raw(self.http.delete(&url), url).await.map(drop)
    }

    pub async fn blob_providers(&self, cid: &str) -> Result<Vec<Provider>, Error> {
        self.get(&format!("/api/v1/blobs/{}/providers", urlencode(cid)))
            .await
    }

    /// Sends a request and checks the status, leaving the body to stream.
    async fn start(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, Error> {
        let resp = req.send().await.map_err(|source| {
            if source.is_connect() {
                Error::NotRunning {
                    url: self.base.clone(),
                }
            } else {
                Error::Http {
                    url: url.to_string(),
                    source,
                }
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
        Err(Error::Api { status, message })
    }

    pub async fn rpc(
        &self,
        method: &str,
        peer: Option<&str>,
        params: Value,
    ) -> Result<RpcResponse, Error> {
        let path = format!("/api/v1/rpc/{}", urlencode(method));
        self.post(
            &path,
            &RpcRequest {
                peer: peer.map(str::to_string),
                params,
            },
        )
        .await
    }
}

/// Path of a record key: `/mcc/a b` → `mcc/a%20b` (slashes kept).
fn key_path(key: &str) -> String {
    segments_path(key.trim_start_matches('/'))
}

/// A `/`-separated name as a URL path: each segment percent-encoded, slashes kept.
fn segments_path(name: &str) -> String {
    name.split('/').map(urlencode).collect::<Vec<_>>().join("/")
}

/// Percent-encodes a path segment.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A list the API answers 404 for when it is empty (so that a removed resource is not served).
fn none_is_empty<T>(found: Result<Vec<T>, Error>) -> Result<Vec<T>, Error> {
    match found {
        Err(e) if e.status() == Some(404) => Ok(Vec::new()),
        other => other,
    }
}
