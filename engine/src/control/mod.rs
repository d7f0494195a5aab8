//! The control plane: versioned JSON-lines requests over a unix socket.
//!
//! [`protocol`] defines the messages (shared with `sluicectl`), [`server`] is
//! the daemon's std thread that answers them, [`client`] is what `sluicectl`
//! and the tests use to ask; [`conns`] carries a connection listing from
//! the cores that own the connections to the control thread.
pub mod client;
pub mod conns;
pub mod metrics;
pub mod protocol;
pub mod server;
