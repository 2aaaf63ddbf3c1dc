//! `mcc doctor`: checks a running node through its REST API and says what to fix.
//!
//! Checks: the API answers (and takes the token), peers, the DHT routing table, reachability
//! (AutoNAT, relays), this node's certificate and the trusted CA, and clock skew against the
//! connected peers (each daemon answers the `time` RPC method with its clock). Each check is
//! OK, WARN or FAIL; any FAIL makes the command exit non-zero.

use serde::Serialize;
use serde_json::json;

use super::output::print_json;
use super::{Error, usage};
use crate::api::types::RpcReply;
use crate::client::{self, Client};
use crate::node::{NodeInfo, Reachability};

/// Clock skew above this is a warning (ms).
pub const SKEW_WARN_MS: f64 = 2_000.0;
/// Clock skew above this is a failure (ms): certificate validity and record expiry suffer.
pub const SKEW_FAIL_MS: f64 = 300_000.0;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
    /// What to do about it (WARN and FAIL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(name: &'static str, status: Status, message: impl Into<String>) -> Check {
    Check {
        name,
        status,
        message: message.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// The checks that read the node's status.
pub fn node_checks(n: &NodeInfo) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(if n.connected_peers == 0 {
        check("peers", Status::Warn, "no connected peers").fix(
            "give a peer to join through (--boot HOST:PORT or --peer), check that this node's \
             listen port is open, or enable mDNS on a LAN (--mdns on)",
        )
    } else {
        check(
            "peers",
            Status::Ok,
            format!("{} connected peers", n.connected_peers),
        )
    });
    out.push(if n.routing_table_size == 0 {
        check("dht", Status::Warn, "the DHT routing table is empty").fix(
            "DHT lookups (records, providers, DIDs) cannot leave this node: connect to a peer \
             (--boot) that speaks the same --kad-protocol",
        )
    } else {
        check(
            "dht",
            Status::Ok,
            format!("{} peers in the DHT routing table", n.routing_table_size),
        )
    });
    let relays = n.relays.iter().filter(|r| r.accepted).count();
    out.push(match n.reachability {
        Reachability::Public => check(
            "reachability",
            Status::Ok,
            match &n.public_addr {
                Some(a) => format!("public at {a}"),
                None => "public".to_string(),
            },
        ),
        Reachability::Private if relays > 0 => check(
            "reachability",
            Status::Ok,
            format!("private, reachable through {relays} relay reservations"),
        ),
        Reachability::Private => check(
            "reachability",
            Status::Warn,
            "private (behind NAT or a firewall) and no relay reservation",
        )
        .fix(
            "forward a port and give --external-addr, or reserve on a relay (--relay \
             HOST:PORT; a public node runs --relay-server)",
        ),
        Reachability::Unknown => check(
            "reachability",
            Status::Warn,
            "unknown: no peer has tested whether this node can be dialled yet",
        )
        .fix("AutoNAT needs connected peers; wait a minute after joining, then run doctor again"),
    });
    let c = &n.certificate;
    out.push(if c.expires_in_secs == 0 {
        check(
            "certificate",
            Status::Fail,
            format!("certificate {} EXPIRED at {}", c.serial, c.expires),
        )
        .fix(if c.self_signed {
            "restart the node for a new self-signed certificate (--cert random)".to_string()
        } else {
            "have the CA sign a new one (mcc ca sign) and restart with --cert".to_string()
        })
    } else if c.expiring_soon {
        check(
            "certificate",
            Status::Warn,
            format!(
                "certificate {} expires in {} days ({})",
                c.serial,
                c.expires_in_secs / 86_400,
                c.expires
            ),
        )
        .fix("have the CA sign a new certificate (mcc ca sign) and restart with --cert")
    } else {
        check(
            "certificate",
            Status::Ok,
            format!(
                "{} certificate valid until {} ({} days)",
                if c.self_signed { "self-signed" } else { "CA" },
                c.expires,
                c.expires_in_secs / 86_400
            ),
        )
    });
    if let Some(ca) = &n.admission.trusted_ca {
        out.push(check(
            "trusted-ca",
            Status::Ok,
            format!(
                "closed network of CA {ca}{}",
                n.admission
                    .trusted_ca_expires
                    .as_deref()
                    .map(|e| format!(", CA valid until {e}"))
                    .unwrap_or_default()
            ),
        ));
    }
    out
}

/// The clock skew check from the replies to the `time` method (this node's own among them).
pub fn skew_check(own_id: &str, replies: &[RpcReply]) -> Check {
    let time = |r: &RpcReply| r.result.as_ref()?.get("unix_ms")?.as_f64();
    let Some(own) = replies.iter().find(|r| r.peer_id == own_id).and_then(time) else {
        return check("clock", Status::Warn, "this node did not tell its time")
            .fix("upgrade the node: it lacks the `time` RPC method");
    };
    let others: Vec<&RpcReply> = replies.iter().filter(|r| r.peer_id != own_id).collect();
    if others.is_empty() {
        return check("clock", Status::Ok, "no peers to compare clocks with");
    }
    let mut worst: Option<(f64, &str)> = None;
    let mut silent = Vec::new();
    for r in &others {
        match time(r) {
            // The peer read its clock about half a round trip after the call went out, as
            // this node read its own.
            Some(t) => {
                let skew = t - r.rtt_ms / 2.0 - own;
                if worst.is_none_or(|(w, _)| skew.abs() > w.abs()) {
                    worst = Some((skew, &r.peer_id));
                }
            }
            None => silent.push(short(&r.peer_id)),
        }
    }
    let Some((skew, peer)) = worst else {
        return check(
            "clock",
            Status::Warn,
            format!("no peer told its time ({})", silent.join(", ")),
        )
        .fix("peers running an older mcc lack the `time` RPC method");
    };
    let measured = format!(
        "largest clock difference {:+.0} ms (peer {}) over {} peers",
        skew,
        short(peer),
        others.len() - silent.len()
    );
    let status = if skew.abs() > SKEW_FAIL_MS {
        Status::Fail
    } else if skew.abs() > SKEW_WARN_MS {
        Status::Warn
    } else {
        Status::Ok
    };
    let c = check("clock", status, measured);
    if status == Status::Ok {
        c
    } else {
        c.fix(
            "synchronise the clocks (NTP: systemd-timesyncd or chrony) on this machine and the \
             peer's; certificates and records carry times",
        )
    }
}

fn short(peer: &str) -> String {
    let n = peer.len();
    if n > 12 {
        format!("…{}", &peer[n - 8..])
    } else {
        peer.to_string()
    }
}

/// Runs every check against the node behind `client`.
pub async fn checks(client: &Client) -> Vec<Check> {
    let url = client.base_url().to_string();
    if let Err(e) = client.health().await {
        return vec![
            check("api", Status::Fail, format!("{url} does not answer: {e}")).fix(
                "start the node (mcc), or point at it: --api URL or --data-folder of the \
                 running node",
            ),
        ];
    }
    let node = match client.node().await {
        Ok(n) => n,
        Err(e) => {
            let fix = match e {
                client::Error::Api { status: 401, .. } => {
                    "give the API token: --api-token FILE (or the node's --data-folder)"
                }
                client::Error::Api { status: 403, .. } => {
                    "the node refuses this Host: use its address or add a name with --api-hosts"
                }
                _ => "check the node's log",
            };
            return vec![check("api", Status::Fail, format!("{url}: {e}")).fix(fix)];
        }
    };
    let mut out = vec![check(
        "api",
        Status::Ok,
        format!(
            "{url} answers: {} ({}), mcc {}, up {} s",
            node.label, node.peer_id, node.version, node.uptime_secs
        ),
    )];
    out.extend(node_checks(&node));
    let own = node.peer_id.to_string();
    out.push(
        match client
            .rpc(crate::daemon::TIME_METHOD, None, json!({}))
            .await
        {
            Ok(r) => skew_check(&own, &r.replies),
            Err(e) => check(
                "clock",
                Status::Warn,
                format!("cannot ask peers' time: {e}"),
            ),
        },
    );
    out
}

fn print_human(checks: &[Check]) {
    for c in checks {
        let status = match c.status {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        println!(
            "{status:<5} {:<13} {}",
            c.name,
            crate::term::escape_text(&c.message)
        );
        if let Some(fix) = &c.fix {
            println!("{:<19}fix: {fix}", "");
        }
    }
}

/// `mcc doctor`.
pub async fn run(client: &Client, json: bool) -> Result<(), Error> {
    let checks = checks(client).await;
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    if json {
        print_json(&json!({ "ok": failed == 0, "checks": checks }))?;
    } else {
        print_human(&checks);
        println!(
            "\n{} checks: {} OK, {warned} WARN, {failed} FAIL",
            checks.len(),
            checks.len() - failed - warned
        );
    }
    if failed > 0 {
        return Err(usage(format!("doctor: {failed} checks failed")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(peer: &str, ms: Option<f64>, rtt: f64) -> RpcReply {
        RpcReply {
            peer_id: peer.into(),
            result: ms.map(|m| json!({ "unix_ms": m })),
            error: ms.is_none().then(|| "unknown method".into()),
            rtt_ms: rtt,
        }
    }

    #[test]
    fn clock_skew_is_judged_against_the_own_clock() {
        let ok = skew_check(
            "me",
            &[
                reply("me", Some(1e12), 0.1),
                reply("p", Some(1e12 + 60.0), 100.0),
            ],
        );
        assert_eq!(ok.status, Status::Ok, "{ok:?}");
        assert!(ok.message.contains("+10 ms"), "{}", ok.message);
        let warn = skew_check(
            "me",
            &[
                reply("me", Some(1e12), 0.1),
                reply("p", Some(1e12 - 10_000.0), 2.0),
            ],
        );
        assert_eq!(warn.status, Status::Warn);
        assert!(warn.fix.is_some());
        let fail = skew_check(
            "me",
            &[
                reply("me", Some(1e12), 0.1),
                reply("p", Some(1e12 + 4e5), 2.0),
            ],
        );
        assert_eq!(fail.status, Status::Fail);
        let alone = skew_check("me", &[reply("me", Some(1e12), 0.1)]);
        assert_eq!(alone.status, Status::Ok);
        let old = skew_check("me", &[reply("me", Some(1e12), 0.1), reply("p", None, 2.0)]);
        assert_eq!(old.status, Status::Warn);
    }
}
