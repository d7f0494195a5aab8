// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* sluice's steering program: frames for a configured service go to the
 * AF_XDP socket of the queue they arrived on; everything else (ARP for host
 * addresses, other ports, IPv6 for now, fragments, IPv4 with options,
 * VLAN-tagged frames, malformed frames) goes to the kernel, counted. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sluice_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, SLUICE_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_MAX_SERVICES);
	__type(key, struct sluice_service_key);
	__type(value, struct sluice_service_value);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_xdp_counters);
} counters SEC(".maps");

/* <linux/icmp.h> pulls in libc socket headers that do not build for
 * -target bpf; the first bytes of an ICMP header are all we read. */
struct icmp_head {
	__u8 type;
	__u8 code;
	__u16 checksum;
};
#define ICMP_ECHO 8

/* The fixed part of any ARP packet (RFC 826). */
struct arp_head {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 oper;
};

/* An Ethernet/IPv4 ARP packet: 28 bytes, no padding. */
struct arp_eth_ipv4 {
	struct arp_head h;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
};

#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif
/* The pre-standard QinQ tag some switches still send. */
#define ETH_P_QINQ_OLD 0x9100

enum verdict { PASS, MALFORMED, FRAGMENT, IPV6, WITH_OPTIONS, TAGGED, STEER };

/* Fill `key` from the frame; the return value says what to do with it. */
static __always_inline enum verdict classify(void *data, void *data_end,
					     struct sluice_service_key *key)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return MALFORMED;

	/* No service is configured for a VLAN: tagged frames are the
	 * kernel's (sluice would answer them untagged). */
	if (eth->h_proto == bpf_htons(ETH_P_8021Q) || eth->h_proto == bpf_htons(ETH_P_8021AD) ||
	    eth->h_proto == bpf_htons(ETH_P_QINQ_OLD))
		return TAGGED;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end)
			return MALFORMED;
		/* The key is ready for IPv6 services; none are served yet. */
		return IPV6;
	}
	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		/* Ethernet/IPv4 ARP requests only; sluice answers those whose
		 * target has an ARP key (a service address the kernel does not
		 * own), everything else stays with the kernel. */
		struct arp_head *h = (void *)(eth + 1);
		if ((void *)(h + 1) > data_end)
			return MALFORMED;
		if (h->htype != bpf_htons(1) || h->ptype != bpf_htons(ETH_P_IP) ||
		    h->hlen != 6 || h->plen != 4 || h->oper != bpf_htons(1))
			return PASS;
		struct arp_eth_ipv4 *arp = (void *)h;
		if ((void *)(arp + 1) > data_end)
			return MALFORMED;
		key->family = SLUICE_FAMILY_IPV4;
		key->proto = SLUICE_KEY_ARP;
		key->port = 0;
		__builtin_memcpy(key->addr, arp->tpa, 4);
		return STEER;
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PASS;

	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return MALFORMED;
	/* sluice does not answer packets with IP options (a reply would have
	 * to reverse a source route): the kernel decides about them. */
	if (ip->ihl != 5)
		return WITH_OPTIONS;
	void *l4 = (void *)(ip + 1);

	key->family = SLUICE_FAMILY_IPV4;
	key->proto = ip->protocol;
	__builtin_memcpy(key->addr, &ip->daddr, 4);

	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return FRAGMENT;

	switch (ip->protocol) {
	case IPPROTO_UDP:
	case IPPROTO_TCP: {
		/* Source and destination ports are the first 4 bytes of both. */
		__u16 *ports = l4;
		if ((void *)(ports + 2) > data_end)
			return MALFORMED;
		key->port = ports[1];
		return STEER;
	}
	case IPPROTO_ICMP: {
		struct icmp_head *icmp = l4;
		if ((void *)(icmp + 1) > data_end)
			return MALFORMED;
		if (icmp->type != ICMP_ECHO)
			return PASS;
		key->port = 0;
		return STEER;
	}
	default:
		return PASS;
	}
}

SEC("xdp")
int sluice_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct sluice_service_key key = {};
	__u32 zero = 0;
	__u32 queue = ctx->rx_queue_index;

	struct sluice_xdp_counters *c = bpf_map_lookup_elem(&counters, &zero);
	if (!c)
		return XDP_PASS;

	enum verdict v = classify(data, data_end, &key);
	switch (v) {
	case MALFORMED:
		c->malformed++;
		return XDP_PASS;
	case IPV6:
		c->ipv6++;
		return XDP_PASS;
	case WITH_OPTIONS:
		c->ip_options++;
		return XDP_PASS;
	case TAGGED:
		c->vlan++;
		return XDP_PASS;
	case PASS:
		c->passed++;
		return XDP_PASS;
	case FRAGMENT:
		/* All fragments: telling the ones aimed at a service apart would
		 * need a second map keyed without the port. */
		c->fragments++;
		return XDP_PASS;
	case STEER:
		break;
	}

	if (!bpf_map_lookup_elem(&services, &key)) {
		/* A TCP or UDP key with port 0 takes every port of its address
		 * (sluice-bench's generator, whose connections come from any
		 * source port); a configured service always names its port. */
		if (key.proto != IPPROTO_TCP && key.proto != IPPROTO_UDP) {
			c->passed++;
			return XDP_PASS;
		}
		key.port = 0;
		if (!bpf_map_lookup_elem(&services, &key)) {
			c->passed++;
			return XDP_PASS;
		}
	}
	/* Counted by what the redirect did: a socket removed between a lookup
	 * and the redirect cannot make a passed frame count as redirected. */
	long r = bpf_redirect_map(&xsks, queue, XDP_PASS);
	if (r == XDP_REDIRECT)
		c->redirected++;
	else
		c->no_socket++;
	return r;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
