/* sluice XDP ABI: the one definition shared by the XDP program (C) and the
 * engine (Rust mirror in ebpf/src/abi.rs). Every field is fixed-width and the
 * structs have no implicit padding, so the layouts match on both sides; a test
 * checks the map key/value sizes in the compiled object.
 */
#ifndef SLUICE_ABI_H
#define SLUICE_ABI_H

#include <linux/types.h>

#define SLUICE_MAX_QUEUES 64
#define SLUICE_MAX_SERVICES 4096

#define SLUICE_FAMILY_IPV4 4
#define SLUICE_FAMILY_IPV6 6

/* `proto` of the key that steers ARP requests for a service address that
 * the kernel does not own (IP protocol 0 never reaches the steering step as
 * a transport, so it cannot collide with a UDP/TCP/ICMP key). */
#define SLUICE_KEY_ARP 0

/* Key of the `services` hash map: which (family, protocol, address, port)
 * belongs to sluice. IPv4 addresses use the first 4 bytes of `addr`, the rest
 * zero; `port` is in network byte order (0 for ICMP echo). */
struct sluice_service_key {
	__u8 family;
	__u8 proto;
	__u16 port;
	__u8 addr[16];
};

/* Value of the `services` map. */
struct sluice_service_value {
	__u32 service_id;
	__u32 flags;
};

/* Per-CPU counters of the XDP program (the `counters` per-CPU array, one
 * entry at index 0). */
struct sluice_xdp_counters {
	__u64 redirected; /* steered to an AF_XDP socket */
	__u64 passed;     /* not a service: handed to the kernel */
	__u64 malformed;  /* too short / bad header: handed to the kernel */
	__u64 no_socket;  /* a service frame on a queue with no socket: handed to the kernel */
	__u64 fragments;  /* IPv4 fragments (any destination): handed to the kernel */
	__u64 ipv6;       /* IPv6 frames (not served yet): handed to the kernel */
	__u64 ip_options; /* IPv4 with options (IHL > 5): handed to the kernel */
	__u64 vlan;       /* 802.1Q / 802.1ad / 0x9100 tagged frames (no VLAN services): handed to the kernel */
};

#endif
