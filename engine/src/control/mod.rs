//! The control plane: versioned JSON-lines requests over a unix socket.
//!
//! [`protocol`] defines the messages (shared with `sluicectl`), [`server`] is
//! the daemon's std thread that answers them, [`client`] is what `sluicectl`
//! and the tests use to ask.
pub mod client;
pub mod metrics;
pub mod protocol;
pub mod server;
