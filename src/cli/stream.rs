//! `mcc stream listen|connect`: netcat-like pipes between stdin/stdout and a user stream to a
//! peer, through the node's `/api/v1/streams/...` upgrade endpoints.
//!
//! Both commands copy stdin to the stream and the stream to stdout. The end of stdin
//! half-closes the stream (the peer reads to its end and may still answer). The command ends
//! with exit 0 once the peer has finished sending and stdout is flushed, and, when stdin is
//! not a terminal, stdin has been sent too (or the peer stopped reading); with a terminal on
//! stdin it ends as soon as the peer has finished sending.

use std::io::{IsTerminal, Read};

use clap::Subcommand;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Error;
use crate::client::Client;
use crate::term;

/// Bytes read from stdin at a time.
const CHUNK: usize = 64 * 1024;
/// Chunks of stdin waiting for the stream.
const QUEUE: usize = 4;

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Wait for a peer to open stream NAME to this node, print `stream from <peer>` on
    /// stderr, then pipe stdin to it and it to stdout (one stream, then exit).
    Listen {
        /// 1-64 characters of A-Z a-z 0-9 . _ -
        name: String,
    },
    /// Open stream NAME to PEER and pipe stdin to it and it to stdout.
    Connect {
        /// Peer id of the node listening on NAME.
        peer: String,
        /// 1-64 characters of A-Z a-z 0-9 . _ -
        name: String,
    },
}

pub async fn run(cmd: StreamCommand, client: &Client, json: bool) -> Result<(), Error> {
    let interactive = std::io::stdin().is_terminal();
    let (peer, conn) = match cmd {
        StreamCommand::Listen { name } => {
            let (peer, conn) = client.stream_listen(&name).await?;
            announce(json, "stream from", &peer, &name);
            (peer, conn)
        }
        StreamCommand::Connect { peer, name } => {
            let (peer, conn) = client.stream_connect(&peer, &name).await?;
            if interactive {
                announce(json, "stream to", &peer, &name);
            }
            (peer, conn)
        }
    };
    pipe(conn, interactive).await.map_err(|e| match e {
        PipeError::Stdin(source) => Error::Io {
            what: "reading stdin".into(),
            source,
        },
        PipeError::Stdout(source) => Error::Io {
            what: "writing stdout".into(),
            source,
        },
        PipeError::Stream(source) => Error::Io {
            what: format!("stream with {}", term::escape_text(&peer)),
            source,
        },
    })
}

/// The peer on stderr: `stream from <peer>`, or one JSON line with `--json`.
fn announce(json: bool, what: &str, peer: &str, name: &str) {
    if json {
        eprintln!("{}", json!({ "peer": peer, "name": name }));
    } else {
        eprintln!("{what} {}", term::escape_text(peer));
    }
}

#[derive(Debug)]
enum PipeError {
    Stdin(std::io::Error),
    Stdout(std::io::Error),
    Stream(std::io::Error),
}

/// Copies stdin → `conn` and `conn` → stdout until done (see the module docs).
async fn pipe<C: AsyncRead + AsyncWrite>(conn: C, interactive: bool) -> Result<(), PipeError> {
    let (mut from_peer, mut to_peer) = tokio::io::split(conn);
    let mut stdin = spawn_stdin_reader();
    let up = async {
        while let Some(chunk) = stdin.recv().await {
            let chunk = chunk.map_err(PipeError::Stdin)?;
            to_peer.write_all(&chunk).await.map_err(PipeError::Stream)?;
        }
        to_peer.shutdown().await.map_err(PipeError::Stream)
    };
    let down = async {
        let mut stdout = tokio::io::stdout();
        copy_to_stdout(&mut from_peer, &mut stdout).await?;
        stdout.flush().await.map_err(PipeError::Stdout)
    };
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    loop {
        tokio::select! {
            r = &mut down, if !down_done => {
                r?;
                down_done = true;
                if up_done || interactive {
                    return Ok(());
                }
            }
            r = &mut up, if !up_done => {
                match r {
                    Ok(()) => {}
                    // The peer stopped reading: what it sent still goes to stdout.
                    Err(PipeError::Stream(e)) => tracing::debug!("the peer stopped reading: {e}"),
                    Err(e) => return Err(e),
                }
                up_done = true;
                if down_done {
                    return Ok(());
                }
            }
        }
    }
}

/// Copies everything from the peer to stdout, telling read errors from write errors.
async fn copy_to_stdout<R: AsyncRead + Unpin>(
    from: &mut R,
    stdout: &mut tokio::io::Stdout,
) -> Result<(), PipeError> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await.map_err(PipeError::Stream)?;
        if n == 0 {
            return Ok(());
        }
        stdout
            .write_all(&buf[..n])
            .await
            .map_err(PipeError::Stdout)?;
    }
}

/// Reads stdin on a thread of its own (a blocking read on a terminal cannot be cancelled,
/// and must not keep the runtime from ending) into a bounded channel; the channel closes at
/// the end of stdin, after an error, or when nobody reads any more.
fn spawn_stdin_reader() -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut buf = vec![0u8; CHUNK];
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}
