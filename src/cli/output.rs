//! How the commands print: tables, JSON, progress bars and one-line summaries. Anything a
//! peer wrote is escaped before it reaches a terminal ([`term`]).

use serde::Serialize;

use super::{Error, usage};
use crate::{node, term};

pub(super) fn admission_line(a: &node::AdmissionInfo) -> String {
    match &a.trusted_ca {
        None => "open (any peer; no --trust-ca)".to_string(),
        Some(ca) => {
            let mut line = format!("closed: only certificates of CA {ca}");
            if let Some(seq) = a.revocations_sequence {
                line.push_str(&format!(
                    "; revocation list #{seq} ({} serials, {} peers)",
                    a.revoked_serials.len(),
                    a.revoked_peers.len()
                ));
            }
            if !a.banned.is_empty() {
                line.push_str(&format!("; {} peers banned", a.banned.len()));
            }
            line
        }
    }
}

pub(super) fn certificate_line(c: &node::CertificateInfo) -> String {
    let issuer = if c.self_signed {
        "self-signed".to_string()
    } else {
        format!("issued by {}", c.issuer)
    };
    let expiry = if c.expires_in_secs == 0 {
        format!("EXPIRED at {}", c.expires)
    } else if c.expiring_soon {
        format!(
            "EXPIRES SOON: in {} days, at {}",
            c.expires_in_secs / 86_400,
            c.expires
        )
    } else {
        format!(
            "expires in {} days, at {}",
            c.expires_in_secs / 86_400,
            c.expires
        )
    };
    format!("{issuer}; {expiry}")
}

/// Prints the files a command wrote: `name: path` lines, or one JSON object.
pub(super) fn print_written(w: &crate::certs::Written, json: bool) -> Result<(), Error> {
    if json {
        return print_json(w);
    }
    for line in w.lines() {
        println!("{}", term::escape_text(&line));
    }
    for warning in &w.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

/// A progress bar on stderr with bytes, rate and ETA (hidden when stderr is not a terminal
/// or with --json).
pub(super) fn bar(len: Option<u64>, json: bool, what: &str) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::with_draw_target(len, indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(what.to_string());
    pb
}

/// Providers of a service or a blob, best first.
pub(super) fn print_providers(
    list: &[crate::services::Provider],
    json: bool,
    none: &str,
) -> Result<(), Error> {
    if json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("{none}");
        return Ok(());
    }
    let rows = list
        .iter()
        .map(|p| {
            let state = if p.local {
                "local"
            } else if p.connected {
                "connected"
            } else {
                "-"
            };
            vec![
                p.peer_id.to_string(),
                p.label.clone().unwrap_or_else(|| "-".into()),
                state.to_string(),
                p.rtt_ms
                    .map(|r| format!("{r:.2} ms"))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_table(&["PEER ID", "LABEL", "STATE", "RTT"], rows);
    Ok(())
}

pub(super) fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(" ")
}

pub(super) fn print_json<T: Serialize>(v: &T) -> Result<(), Error> {
    let s = serde_json::to_string_pretty(v).map_err(|e| usage(e.to_string()))?;
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        println!("{}", term::escape_json(&s));
    } else {
        println!("{s}");
    }
    Ok(())
}

/// Prints rows under headers, columns padded to their widest cell.
/// Cells are escaped ([`term::escape`]): labels, agent strings, replies and errors come from
/// peers.
pub(super) fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| r.iter().map(|c| term::escape(c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::with_capacity(80);
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}
