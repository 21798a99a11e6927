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


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is no help
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
