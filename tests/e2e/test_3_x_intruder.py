"""What an intruder (or a hurried operator) adds beside the platform: the audit names each item, the deploy
refuses before it changes anything, naming the item and the group data key that would allow it; allowed there,
the deploy goes on; removed, the host passes the audit again (allowlist.py)."""

import json

from tools.inbound_client import Host

from conftest import NAME, PORT, ROOT, directus_api, psql

INTRUDER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIntruderIntruderIntruderIntruderIntruderIn mallory@nowhere"
INTRUDER_CONTAINER = "intruder-miner"
LISTENER = "platform-intruder-listener"

ADD = [
    f"echo '{INTRUDER_KEY}' >> /root/.ssh/authorized_keys",
    f"echo '{INTRUDER_KEY}' >> /home/ops/.ssh/authorized_keys",
    "useradd --create-home --shell /bin/bash mallory && install -d -m 700 -o mallory /home/mallory/.ssh && "
    f"echo '{INTRUDER_KEY}' > /home/mallory/.ssh/authorized_keys && "
    "echo 'mallory ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/50-mallory && chmod 440 /etc/sudoers.d/50-mallory",
    "docker run -d --name intruder-miner -p 3333:3333 --entrypoint sleep "
    "$(docker inspect -f '{{.Config.Image}}' msgplatform-redis-1) 3600 >/dev/null",
    f"systemd-run --quiet --unit {LISTENER} python3 -m http.server 8099 --bind 0.0.0.0 && sleep 1",
]
REMOVE = (
    "sed -i '/mallory@nowhere/d' /root/.ssh/authorized_keys /home/ops/.ssh/authorized_keys; "
    "rm -f /etc/sudoers.d/50-mallory; userdel -r mallory 2>/dev/null; "
    f"docker rm -f {INTRUDER_CONTAINER} >/dev/null 2>&1; systemctl stop {LISTENER} 2>/dev/null; true"
)
STRANGER = "stranger@example.com"
AUDITS = (
    "tests/audit/test_access.py",
    "tests/audit/test_host.py::test_admin_user",
    "tests/audit/test_edge.py::test_only_the_edge_publishes_ports",
    "tests/audit/test_apps.py",
)
APP_CHECKS = {
    "test_n8n_has_only_its_owner_and_allowed_members",
    "test_directus_policies_as_allowed_and_public_grants_nothing",
}
CHECKS = {
    "test_only_allowed_keys_in_authorized_keys",
    "test_only_allowed_accounts_may_use_sudo",
    "test_no_container_beside_the_platform",
    "test_nothing_listens_beyond_sshd_and_the_published_ports",
}


def add_to_the_apps(sandbox):
    """An n8n user (in its database), a Directus policy and a Chatwoot administrator (through their APIs)."""
    psql(sandbox, "n8n", f"insert into \\\"user\\\" (email, \\\"roleSlug\\\") values ('{STRANGER}', 'global:member')")
    assert directus_api(sandbox, "POST", "/policies", {"name": "Backdoor", "app_access": True, "admin_access": False})
    Host(NAME, PORT).chatwoot("POST", "/agents", {"name": "Stranger", "email": STRANGER, "role": "administrator"})


def remove_from_the_apps(sandbox):
    psql(sandbox, "n8n", f"delete from \\\"user\\\" where email = '{STRANGER}'")
    found = directus_api(sandbox, "GET", "/policies?filter[name][_eq]=Backdoor&fields=id") or "{}"
    for policy in json.loads(found).get("data", []):
        directus_api(sandbox, "DELETE", f"/policies/{policy['id']}")
    chatwoot = Host(NAME, PORT).chatwoot
    for agent in chatwoot("GET", "/agents"):
        if agent["email"] == STRANGER:
            chatwoot("DELETE", f"/agents/{agent['id']}")


def test_what_an_intruder_adds_is_named_and_the_deploy_stops(sandbox):
    try:
        for command in ADD:
            sandbox.sh(command)
        add_to_the_apps(sandbox)
        rc, failed, log = sandbox.audit(*AUDITS)
        assert set(failed) == CHECKS | APP_CHECKS | {
            "test_admin_user",
            "test_only_the_edge_publishes_ports",
            "test_chatwoot_has_exactly_the_people_teams_labels_and_bot_of_group_data",
        }, log[-3000:]

        rc, results, log = sandbox.deploy()
        assert rc != 0 and results is None and "nothing was changed on the host" in log, log[-3000:]
        for named in (
            "ssh_keys_allowed['root']: account root: key ssh-ed25519 ...erIntruderIn 'mallory@nowhere'",
            "admin_ssh_keys: account ops: key ssh-ed25519",
            "ssh_keys_allowed['mallory']: account mallory",
            "sudo_users_allowed: account mallory may become root (sudoers)",
            f"containers_allowed: container {INTRUDER_CONTAINER} (not made by compose)",
            "listeners_allowed: python3 listens on 8099/tcp (python3:8099/tcp)",
            "listens on 3333/tcp",
            f"n8n_users_allowed: n8n user {STRANGER} (global:member)",
            "directus_policies_allowed: Directus policy 'Backdoor' (given to no one)",
        ):
            assert named in log, f"{named!r} not in the refusal:\n{log[-3000:]}"
        assert INTRUDER_KEY in sandbox.sh("cat /home/ops/.ssh/authorized_keys"), "the refused deploy changed a file"

        sandbox_key = (ROOT / ".sandbox" / "id_ed25519.pub").read_text().strip()
        allowed = {
            "ssh_keys_allowed": {
                "root": [sandbox_key, INTRUDER_KEY],
                "admin": [sandbox_key],
                "mallory": [INTRUDER_KEY],
            },
            "admin_ssh_keys": [sandbox_key, INTRUDER_KEY],
            "sudo_users_allowed": ["admin", "mallory"],
            "containers_allowed": [INTRUDER_CONTAINER],
            "listeners_allowed": ["python3:8099/tcp"],
        }
        allowed |= {"n8n_users_allowed": [STRANGER], "directus_policies_allowed": ["Backdoor"]}
        data = [arg for key, value in allowed.items() for arg in ("--data", f"{key}={json.dumps(value)}")]
        # Chatwoot's agents are read through its API by the bootstrap, which stops before it changes Chatwoot.
        rc, _, log = sandbox.deploy(*data)
        assert rc != 0 and f"chatwoot_agents_allowed: {STRANGER} (administrator)" in log, log[-3000:]
        rc, _, log = sandbox.deploy(*data, "--data", f"chatwoot_agents_allowed={json.dumps([STRANGER])}")
        assert rc == 0, log[-3000:]
        roles = {a["email"]: a["role"] for a in Host(NAME, PORT).chatwoot("GET", "/agents")}
        assert roles[STRANGER] == "agent", "an allowed agent kept the administrator role"
    finally:
        sandbox.sh(REMOVE)
        remove_from_the_apps(sandbox)
        rc, _, log = sandbox.deploy()
    assert rc == 0, log[-3000:]
    rc, failed, log = sandbox.audit(*AUDITS)
    assert rc == 0, failed
