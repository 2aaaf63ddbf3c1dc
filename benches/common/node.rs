//! A full `mcc::Node` run in the bench's process, and how to stop it.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use mcc::Node;
use mcc::node::Builder;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running node and what it takes to stop it.
pub struct Running {
    pub node: Node,
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
    /// Cap on stopping the node and on waiting for its listen address.
    limit: Duration,
}

impl Running {
    /// Spawns the node `builder` makes; it runs until [`Running::shutdown`]. `limit` caps
    /// [`Running::shutdown`] and [`Running::listen_addr`] (not the start: wrap this call in a
    /// timeout for that).
    pub async fn spawn(builder: Builder, limit: Duration) -> Result<Self> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (node, task) = builder
            .spawn(async move {
                let _ = stopped.await;
            })
            .await?;
        Ok(Self {
            node,
            task,
            stop,
            limit,
        })
    }

    /// Drops the handle, asks the node to stop and waits (at most the limit) for its event loop.
    pub async fn shutdown(self) -> Result<()> {
        let Self {
            node,
            task,
            stop,
            limit,
        } = self;
        drop(node);
        let _ = stop.send(());
        tokio::time::timeout(limit, task)
            .await
            .context("node did not stop")??;
        Ok(())
    }

    /// The first listen address of the wanted transport, once the node reports it (at most
    /// the limit).
    pub async fn listen_addr(&self, quic: bool) -> Result<Multiaddr> {
        let deadline = Instant::now() + self.limit;
        loop {
            let found = self.node.info().await?.listen_addrs.into_iter().find(|a| {
                a.iter().any(|p| match p {
                    Protocol::QuicV1 => quic,
                    Protocol::Tcp(_) => !quic,
                    _ => false,
                })
            });
            if let Some(addr) = found {
                return Ok(addr);
            }
            ensure!(Instant::now() < deadline, "no listen address reported");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
