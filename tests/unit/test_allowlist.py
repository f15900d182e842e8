"""Access by allowlist (allowlist.py): what the host holds, read back and compared with group data;
the live proof is tests/e2e/test_3_x_intruder.py."""

import pytest

from platform_deploy import allowlist
from platform_deploy.apps import app_access
from platform_deploy.model import ConfigError
from tests.unit.test_config import load, refused

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKey ops@laptop"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherOtherOtherOtherOtherOtherOtherOther x@y"
HOST = [
    "sshd-port 22",
    "account root 0",
    "login root",
    "account ubuntu 1000",
    "login ubuntu",
    "account carol 1001",
    "login carol",
    "account www-data 33",
    f"key root /root/.ssh/authorized_keys no-port-forwarding,command=\"echo 'use ubuntu'\" {KEY}",
    f"key ubuntu /home/ubuntu/.ssh/authorized_keys {KEY}",
    f"key www-data /var/www/.ssh/authorized_keys {OTHER}",  # no login shell: sshd would not let it in
    "group sudo:x:27:ubuntu",
    "group carol:x:1001:",
    "group admins:x:1002:",
    "sudoers /etc/sudoers:9:Defaults\tenv_reset",
    "sudoers /etc/sudoers:47:root\tALL=(ALL:ALL) ALL",
    "sudoers /etc/sudoers:50:%sudo\tALL=(ALL:ALL) ALL",
    "sudoers /etc/sudoers.d/90-cloud-init-users:2:ubuntu ALL=(ALL) NOPASSWD:ALL",
    "container msgplatform-traefik-1|msgplatform|0.0.0.0:80->80/tcp, [::]:443->443/tcp",
    "container msgplatform-redis-1|msgplatform|",
    'socket tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))',
    'socket tcp LISTEN 0 4096 0.0.0.0:80 0.0.0.0:* users:(("docker-proxy",pid=2,fd=4))',
    'socket tcp LISTEN 0 4096 [::]:443 [::]:* users:(("dockerd",pid=3,fd=5))',
    'socket udp UNCONN 0 0 10.0.0.5%eth0:68 0.0.0.0:* users:(("systemd-network",pid=4,fd=6))',
    'socket udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=5,fd=7))',
]
ALLOWED = {"ssh_keys_allowed": {"root": [KEY], "ubuntu": [KEY]}, "sudo_users_allowed": ["ubuntu"]}


def state(*extra):
    return allowlist.HostAccess().process(HOST + list(extra))


def test_a_cloud_host_as_allowed_passes():
    assert allowlist.drift(load(**ALLOWED), state()) == {}


def test_keys_are_compared_without_their_options_and_comment():
    cfg = load(**ALLOWED)
    found = allowlist.drift(cfg, state(f'key carol /home/carol/.ssh/authorized_keys from="10.0.0.1" {OTHER} other'))
    assert found == {
        "keys": [
            "account carol: key ssh-ed25519 ...erOtherOther 'x@y other' in /home/carol/.ssh/authorized_keys "
            "(not in ssh_keys_allowed['carol'])"
        ]
    }


def test_sudo_through_a_group_a_line_or_everyone_is_named():
    cfg = load(**ALLOWED)
    found = allowlist.drift(
        cfg,
        state(
            "group admins:x:1002:",
            "account dave 1002",
            "sudoers /etc/sudoers.d/50-admins:1:%admins ALL=(ALL) ALL",
            "sudoers /etc/sudoers.d/60-carol:3:carol,ALL ALL=(ALL) ALL",
        ),
    )["sudo"]
    assert found == [
        "account ALL may use sudo (/etc/sudoers.d/60-carol line 3) (not in sudo_users_allowed)",
        "account carol may use sudo (/etc/sudoers.d/60-carol line 3) (not in sudo_users_allowed)",
        "account dave may use sudo (member of group admins, which /etc/sudoers.d/50-admins line 1 lets use sudo) "
        "(not in sudo_users_allowed)",
    ]


def test_a_container_beside_the_project_and_its_port_are_named_until_allowed():
    extra = (
        "container miner||0.0.0.0:3333->3333/tcp",
        'socket tcp LISTEN 0 4096 0.0.0.0:3333 0.0.0.0:* users:(("docker-proxy",pid=9,fd=4))',
        'socket tcp LISTEN 0 5 0.0.0.0:8099 0.0.0.0:* users:(("python3",pid=10,fd=3))',
    )
    found = allowlist.drift(load(**ALLOWED), state(*extra))
    assert found == {
        "containers": ["container miner (not made by compose) (not in containers_allowed)"],
        "listeners": [
            "docker-proxy listens on 3333/tcp (docker-proxy:3333/tcp) (not in listeners_allowed)",
            "python3 listens on 8099/tcp (python3:8099/tcp) (not in listeners_allowed)",
        ],
    }
    cfg = load(**ALLOWED, containers_allowed=["miner"], listeners_allowed=["python3:8099/tcp"])
    assert allowlist.drift(cfg, state(*extra)) == {}


def test_the_deploy_refuses_naming_each_item_and_its_key():
    with pytest.raises(ConfigError) as refusal:
        allowlist.check(load(), state())
    message = str(refusal.value)
    assert "nothing was changed on the host" in message
    assert "- ssh_keys_allowed['root']: account root: key ssh-ed25519 ...KeyKeyKeyKey 'ops@laptop'" in message
    assert "- sudo_users_allowed: account ubuntu may use sudo" in message


@pytest.mark.parametrize(
    "key, value",
    [
        ("ssh_keys_allowed", {"root": ["not a key"]}),
        ("ssh_keys_allowed", {"Root!": [KEY]}),
        ("sudo_users_allowed", ["bad user"]),
        ("containers_allowed", ["/x"]),
        ("listeners_allowed", ["python3:8099"]),
    ],
)
def test_bad_allowlists_are_refused(key, value):
    assert key in refused(**{key: value})


APPS = [
    "n8n_user|ops@example.org|global:owner",
    "policy|$t:public_label|f|f|public",
    "policy|Administrator|t|t|role Administrator",
    "policy|n8n automation|f|f|user n8n-automation@example.org",
    "grant|n8n automation|promotions|read",
]


def apps(*extra):
    return app_access.AppAccess().process(APPS + list(extra))


def test_the_apps_as_the_deploy_made_them_pass():
    cfg = load(admin_email="ops@example.org")
    assert app_access.drift(cfg, apps()) == {} and app_access.repairs(apps()) == {}


def test_strangers_in_the_apps_are_refused_and_public_grants_repaired():
    cfg = load(admin_email="ops@example.org", n8n_users_allowed=["dev@example.org"])
    state = apps(
        "n8n_user|dev@example.org|global:admin",
        "n8n_user|eve@example.org|global:member",
        "policy|Backdoor|f|t|-",
        "policy|Administrator|t|t|role Editors",
        "policy|Editors|t|t|role Editors",
        "grant|$t:public_label|business_context|read",
    )
    assert [what for _, what, _ in app_access.refusals(cfg, state)] == [
        "n8n user dev@example.org is global:admin, may be global:member only",
        "n8n user eve@example.org (global:member)",
        "Directus's Administrator policy is given to role Administrator, role Editors",
        "Directus policy 'Backdoor' (given to no one)",
        "Directus policy 'Editors' (role Editors)",
    ]
    assert app_access.repairs(state) == {"public": "Directus's Public policy grants ['read on business_context']"}
    cfg = load(admin_email="ops@example.org", directus_policies_allowed=["Editors"])
    assert "Directus policy 'Editors' has admin access" in [what for _, what, _ in app_access.refusals(cfg, state)]
