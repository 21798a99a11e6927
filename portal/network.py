"""Which network addresses the portal's own outgoing requests (webhooks) may reach."""

from __future__ import annotations

import ipaddress

# Cloud metadata services: never reachable by a webhook, whatever WEBHOOKS_ALLOW_LOCAL says.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(address) for address in (
    "169.254.169.254",   # AWS, GCP, Azure, OpenStack, Scaleway…
    "169.254.170.2",     # AWS ECS task metadata
    "fd00:ec2::254",     # AWS over IPv6
    "100.100.100.200",   # Alibaba Cloud
))


def is_metadata_address(address: str) -> bool:
    return _parse(address) in METADATA_ADDRESSES


def is_local_address(address: str) -> bool:
    """True for what is not on the public Internet: loopback, private, link-local, shared (CGNAT),
    multicast, reserved, unspecified, and IPv4 written inside IPv6 to any of these."""
    ip = _parse(address)
    return not ip.is_global or ip.is_multicast


# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, IPv4-compatible): a DNS64
# answer of 64:ff9b::a00:1 reaches 10.0.0.1. 6to4 (2002::/16) carries it in bits 16–48.
IPV4_IN_LAST_32_BITS = tuple(ipaddress.ip_network(prefix) for prefix in ("64:ff9b::/96", "64:ff9b:1::/48",
                                                                        "::/96"))
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address, or the IPv4 address an IPv6 one carries (mapped, NAT64, compatible, 6to4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is no help
    if not isinstance(ip, ipaddress.IPv6Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in network for network in IPV4_IN_LAST_32_BITS) and int(ip) > 1:  # not :: nor ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip
