//! The client side of the control socket.
use super::protocol::{Command, Reply, ReplyBody, Request, PROTOCOL_VERSION};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot reach sluiced at {path}: {source} (is sluiced running, and is this the socket in its config?)")]
    Connect {
        /// Socket path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The daemon closed the connection before answering (it stopped, or
    /// is stopping).
    #[error("cannot reach sluiced at {path}: it closed the connection before answering ({detail})")]
    Gone {
        /// Socket path.
        path: String,
        /// What the socket said.
        detail: String,
    },
    /// Reading or writing failed.
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The reply was not valid JSON of the protocol.
    #[error("bad reply from sluiced: {0}")]
    BadReply(String),
    /// The daemon answered with an error.
    #[error("sluiced: {0}")]
    Daemon(String),
}

/// Sends one request and returns the reply body (never an `Error` body: that
/// becomes [`ClientError::Daemon`]).
pub fn request(path: &Path, command: Command, timeout: Duration) -> Result<ReplyBody, ClientError> {
    let mut s = UnixStream::connect(path)
        .map_err(|source| ClientError::Connect { path: path.display().to_string(), source })?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let gone = |detail: String| ClientError::Gone { path: path.display().to_string(), detail };
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof => {
            gone(e.to_string())
        }
        _ => ClientError::Io(e),
    };
    let mut line = serde_json::to_string(&Request::new(command)).map_err(|e| ClientError::BadReply(e.to_string()))?;
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).map_err(io)?;
    if reply.is_empty() {
        return Err(gone("end of stream".into()));
    }
    let r: Reply = serde_json::from_str(&reply).map_err(|e| ClientError::BadReply(e.to_string()))?;
    if r.version != PROTOCOL_VERSION {
        return Err(ClientError::BadReply(format!(
            "protocol version {} (this client speaks {PROTOCOL_VERSION})",
            r.version
        )));
    }
    match r.body {
        ReplyBody::Error(e) => Err(ClientError::Daemon(e)),
        b => Ok(b),
    }
}
