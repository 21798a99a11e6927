"""Which addresses a webhook may reach: local ones (unless allowed) and metadata ones never, in every
form an address can take, IPv4 carried inside IPv6 included."""

from __future__ import annotations

import pytest

from portal.network import is_local_address, is_metadata_address


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.1.1", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "::1", "::", "fe80::1%eth0", "fd00::1",
    "::ffff:127.0.0.1",   # IPv4-mapped
    "64:ff9b::a00:1",     # NAT64 of 10.0.0.1 (a DNS64 answer)
    "64:ff9b:1::a00:1",   # local-use NAT64
    "2002:c0a8:1::1",     # 6to4 of 192.168.0.1
    "::7f00:1",           # IPv4-compatible 127.0.0.1
])
def test_local_addresses_in_every_form_are_local(address):
    assert is_local_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2a00:1450:4007::1", "::ffff:8.8.8.8", "64:ff9b::808:808",
                                     "2002:808:808::1"])
def test_public_addresses_are_not_local(address):
    assert not is_local_address(address)


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254",
                                     "64:ff9b::a9fe:a9fe", "100.100.100.200"])
def test_metadata_addresses_are_recognised_in_every_form(address):
    assert is_metadata_address(address)
    assert is_local_address(address)
