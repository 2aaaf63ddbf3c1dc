//! The route endpoints of the client: publish, list, and follow a route's Server-Sent Events
//! (`GET /api/v1/routes/{route}/events`) as a stream of [`RouteMessage`]s.

use futures::{Stream, StreamExt};

use super::{Client, Error, segments_path};
use crate::api::types::{PublishResponse, RouteEntry, RouteMessage};

/// Longest SSE line the client buffers (a message's JSON; the node caps payloads at 256 KiB).
const MAX_LINE: usize = 4 * 1024 * 1024;

impl Client {
    /// Publishes `body` on `route`; with `wait_ms`, waits that long for a listener first.
    pub async fn publish_route(
        &self,
        route: &str,
        body: Vec<u8>,
        wait_ms: Option<u64>,
    ) -> Result<PublishResponse, Error> {
        let mut url = format!("{}/api/v1/routes/{}", self.base, segments_path(route));
        if let Some(ms) = wait_ms {
            url.push_str(&format!("?wait_ms={ms}"));
        }
        let req = self
            .http
            .post(&url)
            .header("content-type", "application/octet-stream")
            .body(body);
        self.send(req, url).await
    }

    /// Routes with local subscribers, peers' interests or traffic.
    pub async fn routes(&self) -> Result<Vec<RouteEntry>, Error> {
        self.get("/api/v1/routes").await
    }

    /// Follows `route`: every message as it arrives, until the node goes away.
    pub async fn follow_route(
        &self,
        route: &str,
    ) -> Result<impl Stream<Item = Result<RouteMessage, Error>> + use<>, Error> {
        let url = format!(
            "{}/api/v1/routes/{}/events",
            self.base,
            segments_path(route)
        );
        let resp = self.streams.get(&url).send().await.map_err(|source| {
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
        if !status.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            let message = serde_json::from_slice::<crate::api::types::ErrorBody>(&bytes)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(Error::Api {
                status: status.as_u16(),
                message,
            });
        }
        let body = resp.bytes_stream();
        let state = (body, Vec::<u8>::new(), url);
        Ok(futures::stream::unfold(
            state,
            |(mut body, mut buf, url)| async move {
                loop {
                    // One complete line in the buffer: an SSE field.
                    if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        let line = String::from_utf8_lossy(&line);
                        let Some(data) = line.trim_end_matches(['\r', '\n']).strip_prefix("data:")
                        else {
                            continue;
                        };
                        let parsed = serde_json::from_str::<RouteMessage>(data.trim_start())
                            .map_err(|e| Error::Decode {
                                url: url.clone(),
                                reason: e.to_string(),
                            });
                        return Some((parsed, (body, buf, url)));
                    }
                    if buf.len() > MAX_LINE {
                        let e = Error::Decode {
                            url: url.clone(),
                            reason: format!("an event line over {MAX_LINE} bytes"),
                        };
                        return Some((Err(e), (body, Vec::new(), url)));
                    }
                    match body.next().await {
                        Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                        Some(Err(source)) => {
                            let e = Error::Http {
                                url: url.clone(),
                                source,
                            };
                            // Ends the stream on the next poll.
                            return Some((Err(e), (body, Vec::new(), url)));
                        }
                        None => return None,
                    }
                }
            },
        ))
    }
}
