//! The daemon's control server: a std thread accepting on a unix socket
//! (mode 0600), one short-lived thread per connection, never on a data core.
use super::protocol::{Command, Reply, ReplyBody, Request, MAX_REQUEST_BYTES, PROTOCOL_VERSION};
use nix::sys::stat::{umask, Mode};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Answers one command.
pub type Handler = Arc<dyn Fn(&Command) -> ReplyBody + Send + Sync>;

/// Connections served at once; more are refused with an error reply.
const MAX_CONNECTIONS: usize = 16;
/// A connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The running server; [`ControlServer::stop`] (or drop) ends it and removes
/// the socket file.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Another process answers on the socket.
    #[error("control socket {0} is in use by a running sluiced; stop it first or set engine.control_socket")]
    InUse(String),
    /// Creating the socket failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// Socket path.
        path: String,
        /// The OS error.
        source: io::Error,
    },
}

impl ControlServer {
    /// Binds `path` (creating its folder) and starts answering with `handler`.
    pub fn start(path: &Path, handler: Handler) -> Result<Self, ServerError> {
        let io_err = |source| ServerError::Io { path: path.display().to_string(), source };
        if UnixStream::connect(path).is_ok() {
            return Err(ServerError::InUse(path.display().to_string()));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        // Only a stale socket is removed, never a file someone put there.
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path).map_err(io_err)?,
            Ok(_) => {
                return Err(io_err(io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a socket")));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        // Bind under umask 077 so the socket is never reachable with looser
        // permissions, then set 0600 explicitly.
        let old = umask(Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(path);
        umask(old);
        let listener = bound.map_err(io_err)?;
        let started = (|| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            listener.set_nonblocking(true)?;
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            let thread = std::thread::Builder::new()
                .name("sluice-control".into())
                .spawn(move || accept_loop(listener, handler, s))?;
            Ok((stop, thread))
        })();
        match started {
            Ok((stop, thread)) => Ok(ControlServer { path: path.to_path_buf(), stop, thread: Some(thread) }),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(io_err(e))
            }
        }
    }

    /// Stops accepting and removes the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: UnixListener, handler: Handler, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    let _ = reply(&stream, ReplyBody::Error("too many control connections".into()));
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                let (h, a) = (handler.clone(), active.clone());
                let spawned = std::thread::Builder::new().name("sluice-control-conn".into()).spawn(move || {
                    serve(stream, &h);
                    a.fetch_sub(1, Ordering::Relaxed);
                });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                tracing::warn!("control accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn reply(mut stream: &UnixStream, body: ReplyBody) -> io::Result<()> {
    let mut line = serde_json::to_string(&Reply { version: PROTOCOL_VERSION, body })
        .unwrap_or_else(|e| format!("{{\"version\":{PROTOCOL_VERSION},\"error\":\"cannot encode reply: {e}\"}}"));
    line.push('\n');
    stream.write_all(line.as_bytes())
}

/// Answers one request line.
pub fn answer(line: &str, handler: &Handler) -> ReplyBody {
    // Look at the version first so a newer client gets a clear message even
    // when it sends a command this build does not know.
    let value: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return ReplyBody::Error(format!("bad request: not JSON: {e}")),
    };
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == PROTOCOL_VERSION as u64 => {}
        Some(v) => {
            return ReplyBody::Error(format!(
                "unsupported protocol version {v} (this sluiced speaks {PROTOCOL_VERSION})"
            ))
        }
        None => return ReplyBody::Error("bad request: missing \"version\"".into()),
    }
    match serde_json::from_value::<Request>(value) {
        Ok(r) => handler(&r.command),
        Err(e) => ReplyBody::Error(format!("bad request: {e}")),
    }
}

fn serve(stream: UnixStream, handler: &Handler) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(IDLE_TIMEOUT)).is_err() {
        return;
    }
    let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half.take(u64::MAX));
    loop {
        let mut line = String::new();
        reader.get_mut().set_limit(MAX_REQUEST_BYTES as u64 + 1);
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(n) if n > MAX_REQUEST_BYTES => {
                let _ = reply(&stream, ReplyBody::Error(format!("request longer than {MAX_REQUEST_BYTES} bytes")));
                return;
            }
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => {
                if reply(&stream, answer(line.trim(), handler)).is_err() {
                    return;
                }
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    let _ = reply(&stream, ReplyBody::Error("bad request: not UTF-8".into()));
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::client;
    use crate::control::protocol::{ServiceInfo, StatsSnapshot};

    fn handler() -> Handler {
        Arc::new(|c: &Command| match c {
            Command::Services => ReplyBody::Services(vec![ServiceInfo {
                id: 0,
                name: "echo".into(),
                proto: "udp".into(),
                listen: "198.18.0.2:7".into(),
                kind: "echo".into(),
            }]),
            Command::Stats => ReplyBody::Stats(StatsSnapshot::default()),
            Command::Status | Command::Conns { .. } => ReplyBody::Error("not in this test".into()),
        })
    }

    fn sock(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sluice-test-{}-{name}.sock", std::process::id()))
    }

    #[test]
    fn answers_requests_and_refuses_bad_ones() {
        let h = handler();
        assert!(matches!(answer(r#"{"version":1,"command":"services"}"#, &h), ReplyBody::Services(_)));
        let e = |l: &str| match answer(l, &h) {
            ReplyBody::Error(e) => e,
            other => panic!("{other:?}"),
        };
        assert!(e("{").contains("not JSON"));
        assert!(e(r#"{"command":"stats"}"#).contains("missing \"version\""));
        assert!(e(r#"{"version":9,"command":"stats"}"#).contains("unsupported protocol version 9"));
        assert!(e(r#"{"version":1,"command":"reboot"}"#).contains("bad request"));
    }

    #[test]
    fn serves_over_a_unix_socket_with_mode_0600() {
        let path = sock("serve");
        let server = ControlServer::start(&path, handler()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let got = client::request(&path, Command::Services, Duration::from_secs(5)).unwrap();
        assert!(matches!(got, ReplyBody::Services(v) if v[0].name == "echo"));
        let err = client::request(&path, Command::Status, Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("not in this test"));
        // A regular file at the path is not deleted.
        let file = sock("file");
        std::fs::write(&file, b"precious").unwrap();
        match ControlServer::start(&file, handler()) {
            Err(e) => assert!(e.to_string().contains("not a socket"), "{e}"),
            Ok(_) => panic!("started over a regular file"),
        }
        assert_eq!(std::fs::read(&file).unwrap(), b"precious");
        std::fs::remove_file(&file).unwrap();
        // A second server on the same socket is refused while the first runs.
        assert!(matches!(ControlServer::start(&path, handler()), Err(ServerError::InUse(_))));
        server.stop();
        assert!(!path.exists(), "socket removed on stop");
    }

    #[test]
    fn oversized_and_garbage_lines_get_errors_and_the_server_survives() {
        let path = sock("garbage");
        let _server = ControlServer::start(&path, handler()).unwrap();
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&vec![b'x'; MAX_REQUEST_BYTES + 10]).unwrap();
        s.write_all(b"\n").unwrap();
        let mut r = String::new();
        BufReader::new(&s).read_line(&mut r).unwrap();
        assert!(r.contains("longer than"), "{r}");
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"\xff\xfe\n").unwrap();
        let mut r = String::new();
        BufReader::new(&s).read_line(&mut r).unwrap();
        assert!(r.contains("error"), "{r}");
        assert!(client::request(&path, Command::Stats, Duration::from_secs(5)).is_ok());
    }
}
