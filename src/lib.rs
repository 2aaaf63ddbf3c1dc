//! # mcc — mesh companion container
//!
//! A peer-to-peer node daemon on rust-libp2p that runs beside services and gives them,
//! without a central server, discovery (Kademlia, rendezvous key, mDNS), echo/RPC to peers,
//! a REST API and a CLI.
//!
//! Embed a node in your own program with [`Node::builder`]; see `examples/embed.rs`.
//!
//! Data flow: CLI → [`client`] → [`api`] handler → [`Node`] handle, or one of its feature
//! handles (`node.services()`, `node.blobs()`, `node.streams()`, `node.admission()`, each over a
//! [`node::Network`]) → event loop (the only owner of the `Swarm`) → behaviours → network.

pub mod api;
pub mod blobs;
pub mod certs;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
mod fsutil;
pub mod identity;
pub mod label;
pub mod node;
pub mod profile;
pub mod routes;
pub mod services;
pub mod storage;
pub mod streams;
pub mod term;

pub use mcc_rpc as rpc;
pub use node::{Config, Node};
