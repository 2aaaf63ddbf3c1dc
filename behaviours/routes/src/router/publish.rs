//! Publishing: one message to the local subscriptions and to the send queues of the peers
//! interested in its route, and to nobody else.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Message, Shared, now_unix_ms, tags_match};
use crate::codec;
use crate::error::PublishError;
use crate::handle::Delivery;

impl Shared {
    pub(crate) async fn publish(
        &self,
        route: &str,
        tag: Option<&str>,
        payload: Bytes,
    ) -> Result<Delivery, PublishError> {
        let max = self.config.max_message_size();
        if payload.len() > max {
            return Err(PublishError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let now = Instant::now();
        let time_unix_ms = now_unix_ms();
        let (seq, targets, local) = {
            let mut state = self.lock();
            let targets: Vec<mpsc::Sender<Bytes>> = state
                .peers
                .values()
                .filter(|p| {
                    p.interests
                        .get(route)
                        .is_some_and(|i| i.expires > now && tags_match(i.tag.as_deref(), tag))
                })
                .filter_map(|p| p.links.first().map(|(_, tx)| tx.clone()))
                .collect();
            let r = match state.routes.get_mut(route) {
                Some(r) => r,
                None => state.routes.entry(route.to_string()).or_default(),
            };
            r.seq += 1;
            (r.seq, targets, !r.subs.is_empty())
        };
        if local {
            self.deliver(
                Message {
                    from: self.local,
                    route: route.to_string(),
                    seq,
                    time_unix_ms,
                    payload: payload.clone(),
                },
                false,
            );
        }
        if targets.is_empty() {
            return Ok(Delivery {
                seq,
                peers: 0,
                dropped: 0,
            });
        }
        let frame = codec::encode_message(route, seq, time_unix_ms, &payload);
        let mut waiting = Vec::new();
        let mut sent = 0u64;
        for tx in targets {
            match tx.try_send(frame.clone()) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => waiting.push(tx),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        let mut dropped = 0u64;
        if !waiting.is_empty() {
            let timeout = self.config.send_timeout();
            let results = futures::future::join_all(waiting.iter().map(|tx| {
                let frame = frame.clone();
                async move {
                    match tokio::time::timeout(timeout, tx.reserve()).await {
                        Ok(Ok(permit)) => {
                            permit.send(frame);
                            Some(true)
                        }
                        Ok(Err(_closed)) => None,
                        Err(_elapsed) => Some(false),
                    }
                }
            }))
            .await;
            for r in results {
                match r {
                    Some(true) => sent += 1,
                    Some(false) => dropped += 1,
                    None => {}
                }
            }
        }
        self.stats.sent.fetch_add(sent, Ordering::Relaxed);
        self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        if let Some(r) = self.lock().routes.get_mut(route) {
            r.sent += sent;
            r.dropped += dropped;
        }
        Ok(Delivery {
            seq,
            peers: sent,
            dropped,
        })
    }
}
