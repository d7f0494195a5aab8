//! sluice engine: XDP steering, per-core AF_XDP workers, a user-space TCP
//! stack, UDP, TCP and ICMP services, control plane. See docs/ARCHITECTURE.md for the map.
#![deny(unsafe_code)]

pub mod afxdp;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod handoff;
pub mod idle;
pub mod ownership;
pub mod pool;
pub mod port;
pub mod rss;
pub mod services;
pub mod stats;
pub mod steering;
pub mod tcp;
pub mod wire;
pub mod worker;
