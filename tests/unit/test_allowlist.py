"""Access by allowlist (allowlist.py): what the host holds, read back and compared with group data;
the live proof is tests/e2e/test_3_x_intruder.py."""

import json

import pytest

from platform_deploy import allowlist
from platform_deploy.apps import app_access
from platform_deploy.model import ConfigError
from tests.unit.test_config import load, refused

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKey ops@laptop"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherOtherOtherOtherOtherOtherOtherOther x@y"


def sudoers(*specs, aliases=None):
    """cvtsudoers -f json's output for these User_Lists, on one line as the fact reads it."""
    document = {"User_Specs": [{"User_List": list(spec)} for spec in specs], "User_Aliases": aliases or {}}
    return "sudoers " + json.dumps(document)


# Ubuntu's stock sudoers: root, %admin (a group Ubuntu no longer has) and %sudo; cloud-init's ubuntu.
STOCK_SUDOERS = sudoers(
    [{"username": "root"}], [{"usergroup": "admin"}], [{"usergroup": "sudo"}], [{"username": "ubuntu"}]
)
HOST = [
    "sshd-port 22",
    "account root 0 0",
    "account ubuntu 1000 1000",
    "account carol 1001 1001",
    "account www-data 33 33",
    f"key root /root/.ssh/authorized_keys no-port-forwarding,command=\"echo 'use ubuntu'\" {KEY}",
    f"key ubuntu /home/ubuntu/.ssh/authorized_keys {KEY}",
    "group sudo:x:27:ubuntu",
    "group carol:x:1001:",
    "group docker:x:999:",
    STOCK_SUDOERS,
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


def test_keys_are_compared_without_their_options_and_comment_on_every_account():
    cfg = load(**ALLOWED)
    found = allowlist.drift(cfg, state(f'key www-data /var/www/.ssh/authorized_keys from="10.0.0.1" {OTHER} other'))
    assert found == {
        "keys": [
            "account www-data: key ssh-ed25519 ...erOtherOther 'x@y other' in /var/www/.ssh/authorized_keys "
            "(not in ssh_keys_allowed['www-data'])"
        ]
    }


def test_an_allowed_key_inside_an_option_does_not_hide_the_real_one():
    line = f'command="bash -i; : {KEY}" {OTHER}'
    assert allowlist.key_blob(line) == " ".join(OTHER.split()[:2])
    assert "keys" in allowlist.drift(load(**ALLOWED), state(f"key root /root/.ssh/authorized_keys {line}"))


def test_keys_from_elsewhere_are_named():
    found = allowlist.drift(load(**ALLOWED), state("sshd-source trustedusercakeys /etc/ssh/ca.pub"))
    assert found["keys"] == [
        "sshd takes keys from elsewhere too: trustedusercakeys /etc/ssh/ca.pub (not in ssh_keys_allowed)"
    ]


def test_sudo_by_group_user_id_alias_or_netgroup_and_the_docker_group_are_named():
    cfg = load(**ALLOWED)
    extra = [
        "account dave 1002 1002",
        "account erin 1003 1003",
        "group admins:x:1002:",
        "group docker:x:999:erin",
    ]
    rules = sudoers(
        [{"username": "root"}],
        [{"usergroup": "admins"}],
        [{"userid": 1001}],
        [{"useralias": "OPS"}],
        [{"netgroup": "ops"}],
        aliases={"OPS": [{"username": "frank"}]},
    )
    found = allowlist.drift(cfg, allowlist.HostAccess().process([*HOST, *extra, rules]))["sudo"]
    assert found == [
        "account carol may become root (sudoers) (not in sudo_users_allowed)",
        "account dave may become root (member of group admins, which sudoers names) (not in sudo_users_allowed)",
        "account erin may become root (member of group docker, which is root by another name) "
        "(not in sudo_users_allowed)",
        "account frank may become root (sudoers) (not in sudo_users_allowed)",
        'account {"netgroup": "ops"} may become root (sudoers names it) (not in sudo_users_allowed)',
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
    assert "- sudo_users_allowed: account ubuntu may become root" in message


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
    "policy|p1|$t:public_label|f|f|public",
    "policy|p2|Administrator|t|t|role Administrator",
    "policy|p3|n8n automation|f|f|user n8n-automation@example.org",
    "grant|p3|promotions|read",
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
        "policy|p4|Backdoor|f|t|-",
        "policy|p2|Administrator|t|t|role Editors",
        "policy|p5|Editors|t|t|role Editors",
        "policy|p6|Administrator|t|t|user eve@example.org",
        "grant|p1|business_context|read",
    )
    assert [what for _, what, _ in app_access.refusals(cfg, state)] == [
        "n8n user dev@example.org is global:admin, may be global:member only",
        "n8n user eve@example.org (global:member)",
        "Directus policy 'Administrator' has admin access (role Administrator, role Editors)",
        "Directus policy 'Administrator' has admin access (user eve@example.org)",
        "Directus policy 'Backdoor' (given to no one)",
        "Directus policy 'Editors' (role Editors)",
    ]
    assert app_access.repairs(state) == {"public": "Directus's Public policy grants ['read on business_context']"}
    cfg = load(admin_email="ops@example.org", directus_policies_allowed=["Editors"])
    assert "Directus policy 'Editors' has admin access (role Editors)" in [
        what for _, what, _ in app_access.refusals(cfg, state)
    ]


def test_a_container_is_the_projects_by_its_name_too_and_port_ranges_are_read():
    found = allowlist.drift(
        load(**ALLOWED),
        state("container miner|msgplatform|0.0.0.0:8000-8001->8000-8001/tcp, :::8000-8001->8000-8001/tcp"),
    )
    assert found["containers"] == ["container miner (compose project msgplatform) (not in containers_allowed)"]
    assert allowlist.published_ports("0.0.0.0:8000-8001->8000-8001/tcp") == {(8000, "tcp"), (8001, "tcp")}


def test_n8n_may_have_one_owner_whatever_its_address_and_members_by_any_case():
    cfg = load(admin_email="ops@example.org", n8n_users_allowed=["Dev@Example.org"])
    state = apps("n8n_user|dev@example.org|global:member")
    assert app_access.refusals(cfg, state) == []
    state = apps("n8n_user|boss@example.org|global:owner")
    assert [what for _, what, _ in app_access.refusals(cfg, state)] == [
        "n8n has 2 owners: boss@example.org, ops@example.org"
    ]
    assert "n8n_users" in app_access.drift(cfg, app_access.AppAccess().process(APPS[1:]))
