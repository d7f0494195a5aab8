//! The error type of the lab crate.

use std::net::Ipv4Addr;

/// Everything that can go wrong while building, inspecting or removing a lab.
///
/// Every message says what failed and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The process is not running as root.
    #[error(
        "not root: the lab needs CAP_NET_ADMIN and CAP_SYS_ADMIN to create network namespaces; \
         run the tests or `sluice-bench lab` as root (e.g. with sudo)"
    )]
    NotRoot,

    /// A lab name is empty, too long or contains characters other than `[a-z0-9-]`.
    #[error("invalid lab name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },

    /// An address lies outside the benchmarking range 198.18.0.0/15.
    #[error(
        "address {addr} is outside 198.18.0.0/15: the lab only uses the RFC 2544 benchmarking \
         range so that it can never send traffic to a real network; pick an address in \
         198.18.0.0-198.19.255.255"
    )]
    AddressOutOfRange {
        /// The rejected address.
        addr: Ipv4Addr,
    },

    /// Some other part of the configuration is unusable.
    #[error("invalid lab configuration: {0}")]
    InvalidConfig(String),

    /// A namespace that the lab wants to create exists already.
    #[error(
        "network namespace {ns} already exists (left over from an earlier run?); remove it with \
         `sluice-bench lab down {name}` or `ip netns del {ns}`, or choose another lab name"
    )]
    AlreadyExists {
        /// The lab name.
        name: String,
        /// The namespace that exists.
        ns: String,
    },

    /// A lab that should exist does not.
    #[error(
        "no lab named {name:?}: network namespace {ns} does not exist; `ip netns list` shows \
         the existing ones"
    )]
    NotFound {
        /// The lab name.
        name: String,
        /// The namespace that is missing.
        ns: String,
    },

    /// A network namespace name is not one of the lab's (`sluice-…`).
    #[error(
        "refusing to enter network namespace {ns:?}: only lab namespaces named \
         `sluice-[a-z0-9-]+` are allowed"
    )]
    ForeignNamespace {
        /// The rejected namespace name.
        ns: String,
    },

    /// An external command could not be started.
    #[error("could not run `{command}`: {source}; is iproute2/ethtool installed and in PATH?")]
    Spawn {
        /// The command line.
        command: String,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },

    /// An external command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// How it exited.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },

    /// The output of a command could not be understood.
    #[error("could not understand the output of `{command}`: {detail}")]
    Parse {
        /// The command line.
        command: String,
        /// What was wrong.
        detail: String,
    },

    /// `/run/netns/<ns>` could not be opened.
    #[error("could not open network namespace {ns} ({path}): {source}; does the lab still exist?")]
    OpenNamespace {
        /// The namespace name.
        ns: String,
        /// The path that was opened.
        path: String,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },

    /// `setns(2)` failed.
    #[error("could not join network namespace {ns}: setns: {source}; the process needs CAP_SYS_ADMIN")]
    Setns {
        /// The namespace name.
        ns: String,
        /// The error from the kernel.
        #[source]
        source: nix::Error,
    },

    /// A veth end did not become operationally up in time.
    #[error(
        "{interface} in {ns} did not come up within {waited:?} (state {state}); check          `ip -n {ns} link show {interface}`"
    )]
    LinkNotUp {
        /// The namespace.
        ns: String,
        /// The interface.
        interface: String,
        /// Its last operational state.
        state: String,
        /// How long the lab waited.
        waited: std::time::Duration,
    },

    /// A thread could not be spawned.
    #[error("could not spawn a thread: {0}")]
    Thread(#[source] std::io::Error),

    /// Removing a lab failed for one or more namespaces.
    #[error("could not remove lab {name}: {}", .errors.join("; "))]
    Teardown {
        /// The lab name.
        name: String,
        /// One message per namespace that could not be removed.
        errors: Vec<String>,
    },
}
