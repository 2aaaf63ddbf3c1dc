//! The stream endpoints of the client: `GET /api/v1/streams/{name}/listen` and
//! `/connect/{peer}` as HTTP/1.1 upgrades; a success is the peer and the raw connection
//! (`reqwest::Upgraded`: tokio `AsyncRead + AsyncWrite`, the stream's bytes both ways;
//! `shutdown()` half-closes).

use super::{Client, Error, urlencode};
use crate::api::types::{ErrorBody, STREAM_PEER_HEADER, STREAM_UPGRADE};
use reqwest::Upgraded;

impl Client {
    /// Waits until a peer opens the stream `name` to the node, then returns that peer's id
    /// and the stream's bytes.
    pub async fn stream_listen(&self, name: &str) -> Result<(String, Upgraded), Error> {
        self.stream_upgrade(format!("/api/v1/streams/{}/listen", urlencode(name)))
            .await
    }

    /// Opens the stream `name` to `peer` through the node and returns its bytes.
    pub async fn stream_connect(
        &self,
        peer: &str,
        name: &str,
    ) -> Result<(String, Upgraded), Error> {
        self.stream_upgrade(format!(
            "/api/v1/streams/{}/connect/{}",
            urlencode(name),
            urlencode(peer)
        ))
        .await
    }

    async fn stream_upgrade(&self, path: String) -> Result<(String, Upgraded), Error> {
        let url = format!("{}{path}", self.base);
        let req = self
            .streams
            .get(&url)
            .header(reqwest::header::CONNECTION, "upgrade")
            .header(reqwest::header::UPGRADE, STREAM_UPGRADE);
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
        if status != reqwest::StatusCode::SWITCHING_PROTOCOLS {
            let bytes = resp.bytes().await.map_err(|source| Error::Http {
                url: url.clone(),
                source,
            })?;
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(Error::Api {
                status: status.as_u16(),
                message,
            });
        }
        let peer = resp
            .headers()
            .get(STREAM_PEER_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let upgraded = resp.upgrade().await.map_err(|source| Error::Http {
            url: url.clone(),
            source,
        })?;
        Ok((peer, upgraded))
    }
}
