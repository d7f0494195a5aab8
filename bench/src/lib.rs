//! sluice-bench: veth labs, load generators (kernel sockets and AF_XDP),
//! baselines (kernel UDP echo, a raw AF_XDP reflector) and the scenarios
//! that measure sluice against them.
#![deny(unsafe_code)]

pub mod cli;
pub mod compare;
pub mod conn_scale;
pub mod cpu;
pub mod frame;
pub mod interrupt;
// The recvmmsg/sendmmsg batches are the only unsafe code of the bench.
#[allow(unsafe_code)]
pub mod kernel_echo;
pub mod kernel_gen;
pub mod kernel_tcp_echo;
pub mod netinfo;
pub mod nginx;
pub mod progress;
pub mod publish;
pub mod reflect;
pub mod report;
pub mod results;
pub mod sluiced;
pub mod summary;
pub mod tcp_echo;
pub mod tcp_gen;
pub mod tcp_xdp_gen;
pub mod udp_echo;
pub mod wrk;
pub mod xdp_gen;

/// The most requests the afxdp TCP generator keeps in flight per connection.
pub fn tcp_xdp_gen_max_window() -> usize {
    sluice_engine::services::rr_client::MAX_WINDOW
}
