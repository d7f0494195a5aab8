//! Network namespaces: naming rules, existence checks and running code inside one.

use std::fs::File;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};

use crate::config::NS_PREFIX;
use crate::LabError;

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Path of the bind mount that names namespace `ns`.
pub fn ns_path(ns: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(ns)
}

/// Whether the named namespace `ns` exists (as `/run/netns/<ns>`).
pub fn ns_exists(ns: &str) -> bool {
    ns_path(ns).exists()
}

/// Checks that `ns` is a lab namespace name: `sluice-` followed by `[a-z0-9-]`.
pub fn validate_ns_name(ns: &str) -> Result<(), LabError> {
    let ok = ns.strip_prefix(NS_PREFIX).is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(LabError::ForeignNamespace { ns: ns.to_string() })
    }
}

/// The network namespace of the calling thread, e.g. `net:[4026531840]`.
///
/// Two threads are in the same network namespace exactly when this is equal.
pub fn current_netns() -> std::io::Result<String> {
    let link = std::fs::read_link("/proc/thread-self/ns/net")?;
    Ok(link.to_string_lossy().into_owned())
}

/// Runs `f` on a new scoped thread that first joins lab namespace `ns` with
/// `setns(CLONE_NEWNET)`, and returns what `f` returns.
///
/// Sockets that `f` creates live in `ns`, and threads that `f` spawns start in `ns` too
/// (a new thread inherits the network namespace of the thread that creates it). The calling
/// thread is not affected. If `f` panics, the panic is resumed on the calling thread.
pub fn run_in<F, R>(ns: &str, f: F) -> Result<R, LabError>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    validate_ns_name(ns)?;
    let path = ns_path(ns);
    let file = File::open(&path).map_err(|source| LabError::OpenNamespace {
        ns: ns.to_string(),
        path: path.display().to_string(),
        source,
    })?;
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(format!("in-{ns}"))
            .spawn_scoped(scope, move || {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|source| LabError::Setns { ns: ns.to_string(), source })?;
                drop(file);
                Ok(f())
            })
            .map_err(LabError::Thread)?;
        match handle.join() {
            Ok(result) => result,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lab_namespaces_may_be_entered() {
        for bad in ["", "sluice-", "other", "sluice-../../etc", "sluice-A", "x-sluice-a"] {
            assert!(matches!(run_in(bad, || ()), Err(LabError::ForeignNamespace { .. })), "{bad:?} accepted");
        }
        assert!(validate_ns_name("sluice-abc-s").is_ok());
    }

    #[test]
    fn missing_namespace_is_an_error() {
        let err = run_in("sluice-does-not-exist-s", || ()).unwrap_err();
        assert!(matches!(err, LabError::OpenNamespace { .. }), "{err}");
    }

    #[test]
    fn current_netns_is_readable() {
        let ns = current_netns().expect("readlink /proc/thread-self/ns/net");
        assert!(ns.starts_with("net:["), "{ns}");
    }
}
