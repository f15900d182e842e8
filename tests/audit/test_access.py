"""Access by allowlist: what exists on the host, compared with what group data allows (allowlist.py).
Each failure names the item and the group data key that would allow it."""

import pytest

from platform_deploy import allowlist

from conftest import run_fact


@pytest.fixture(scope="module")
def drift(host, cfg):
    return allowlist.drift(cfg, run_fact(host, allowlist.HostAccess))


def test_only_allowed_keys_in_authorized_keys(drift):
    """Every key in the authorized_keys files (as sshd -T names them) of every account with a login shell."""
    assert "keys" not in drift, drift.get("keys")


def test_only_allowed_accounts_may_use_sudo(drift):
    """Accounts named by sudoers rules, and the members of the groups they name."""
    assert "sudo" not in drift, drift.get("sudo")


def test_no_container_beside_the_platform(drift):
    assert "containers" not in drift, drift.get("containers")


def test_nothing_listens_beyond_sshd_and_the_published_ports(drift):
    """Sockets beyond loopback, by process: sshd on its ports, Docker on what allowed containers publish."""
    assert "listeners" not in drift, drift.get("listeners")
