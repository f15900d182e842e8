"""Every audit check has a drift: made by hand on the host (out of band, as an operator or
an intruder would), the audit fails on exactly the checks it names, one deploy repairs
it, the audit passes again, and a second deploy changes nothing. The drifts go in two
batches; within a batch no two drifts share a check, so each failure is attributed.
README ("Drift and its repair") has the table; checks not here are covered elsewhere
(test_1: UFW rules, Docker stopped, live-restore, sysctl; test_3_edge: DOCKER-USER flushed)
or waived there."""

import json

import paramiko
import pytest

from tools.inbound_client import Host

from conftest import DC, GROUP_DATA, NAME, PORT, ROOT, changed, directus_api, psql, redis

ROOT_DIR = "/opt/msgplatform"
N8N_DIRECTUS_USER = f"n8n-automation@{GROUP_DATA['admin_email'].split('@')[1]}"


def secret_leak():
    return f'echo "# $(cat {ROOT_DIR}/secrets/redis_password)" >> {ROOT_DIR}/compose.yaml'


def traefik_with_default_capabilities():
    """Traefik recreated by hand from a compose file without its least-privilege lines."""
    return (
        f"grep -v -e 'cap_drop' -e 'cap_add' {ROOT_DIR}/compose.yaml > /tmp/drift-compose.yaml && "
        f"docker compose -p msgplatform --project-directory {ROOT_DIR} -f /tmp/drift-compose.yaml "
        "up -d --no-deps traefik "
        ">/dev/null 2>&1 && rm /tmp/drift-compose.yaml"
    )


def n8n_sql(sql):
    return f'{DC} exec -T postgres psql -U postgres -d n8n -c "{sql}" >/dev/null'


# (drift, how it is made, the audit checks it fails)
BATCH_HOST_AND_STACK = [
    ("a base package removed", "apt-get remove -y -qq whois >/dev/null 2>&1", {"test_packages_installed"}),
    (
        "a security-upgrade timer off",
        "systemctl disable --now apt-daily.timer 2>/dev/null",
        {"test_time_sync_and_security_upgrades"},
    ),
    (
        "an sshd drop-in that would win, and ours no longer first",
        "sed -i '1d' /etc/ssh/sshd_config && "
        "printf 'PasswordAuthentication yes\\nX11Forwarding yes\\n' > /etc/ssh/sshd_config.d/00-drift.conf",
        {"test_ssh_hardening"},
    ),
    (
        "login.defs umask loosened",
        "sed -i 's/^UMASK.*/UMASK 022/' /etc/login.defs",
        {"test_kernel_modules_login_defaults_and_banner"},
    ),
    ("Docker's audit rules removed", "rm /etc/audit/rules.d/60-platform-docker.rules", {"test_docker_audited"}),
    (
        "UFW lets everything in",
        "ufw default allow incoming >/dev/null",
        {"test_ufw_active_with_default_deny", "test_ufw_rules_loaded_in_kernel"},
    ),
    ("a redirect sysctl on", "sysctl -qw net.ipv4.conf.all.accept_redirects=1", {"test_sysctls_live_and_persisted"}),
    (
        "a secret made world-readable",
        f"chmod 644 {ROOT_DIR}/secrets/redis_password",
        {"test_secret_files_are_root_only"},
    ),
    ("acme.json readable by all", f"chmod 644 {ROOT_DIR}/edge/letsencrypt/acme.json", {"test_acme_json_private"}),
    (
        "Pangolin's config readable by all",
        f"chmod 644 {ROOT_DIR}/edge/pangolin/config.yml",
        {"test_pangolin_config_private"},
    ),
    ("the backup directory opened", "chmod 755 /var/backups/msgplatform", {"test_backups_are_root_only"}),
    ("compose.yaml broken", f"echo 'services: [' >> {ROOT_DIR}/compose.yaml", {"test_compose_file_is_valid"}),
    ("a secret copied into compose.yaml", secret_leak(), {"test_no_secret_value_outside_the_secrets_directory"}),
    (
        "Chatwoot's prepare forgotten",
        f"echo old > {ROOT_DIR}/state/chatwoot-prepared",
        {"test_chatwoot_prepared_for_its_image"},
    ),
    ("Redis reconfigured live", None, {"test_redis_requires_its_password_and_never_evicts"}),
    (
        "redis.conf changed after Redis started",
        f"touch {ROOT_DIR}/config/redis.conf",
        {"test_services_run_their_current_configuration"},
    ),
    (
        "a memory limit changed with docker update",
        "docker update --memory 300m --memory-swap 300m msgplatform-pangolin-1 >/dev/null",
        {"test_memory_limits_follow_the_profile"},
    ),
    (
        "a restart policy changed with docker update",
        "docker update --restart no msgplatform-chatwoot-sidekiq-1 >/dev/null",
        {"test_restart_policy_pids_limit_and_no_new_privileges"},
    ),
    (
        "CPU shares changed with docker update",
        "docker update --cpu-shares 2 msgplatform-n8n-1 >/dev/null",
        {"test_cpu_shares_as_compose_says"},
    ),
    (
        "Redis attached to the edge network",
        # Once more if dockerd's interface rename fails under load ("error renaming interface ... file exists").
        "docker network connect msgplatform_edge msgplatform-redis-1 || { sleep 2; "
        "docker network disconnect -f msgplatform_edge msgplatform-redis-1 2>/dev/null; "
        "docker network connect msgplatform_edge msgplatform-redis-1; }",
        {"test_only_the_apps_reach_the_data_network"},
    ),
    (
        "an extra database grant, and an app's role given CREATEROLE",
        None,
        {"test_databases_and_roles", "test_each_role_opens_its_own_database_only"},
    ),
    (
        "the poster unpublished",
        n8n_sql("update workflow_entity set active = false where id = 'platformPoster02'"),
        {"test_shipped_workflows_are_published"},
    ),
    (
        "the poster's time zone changed",
        n8n_sql(
            "update workflow_entity set settings = jsonb_set(settings::jsonb, '{timezone}', "
            "'\\\"UTC\\\"')::json where id = 'platformPoster02'"
        ),
        {"test_the_poster_runs_on_the_configured_schedule_and_time_zone"},
    ),
    (
        "triage's failures no longer reach the safety net",
        n8n_sql(
            "update workflow_entity set settings = (settings::jsonb - 'errorWorkflow')::json "
            "where id = 'platformTriage01'"
        ),
        {"test_failed_executions_reach_the_inbound_safety_net"},
    ),
    # Through Directus's API with the admin's token, as in its admin app (SQL would bypass its cache).
    ("n8n's Directus user given the admin role", None, {"test_n8ns_directus_user_has_no_role_and_only_its_policy"}),
    ("n8n's Directus policy widened", None, {"test_n8ns_directus_user_has_only_its_permissions"}),
    (
        "Directus's Public policy given read on the business context",
        None,
        {"test_directus_policies_as_allowed_and_public_grants_nothing"},
    ),
    (
        "the backup timer off",
        "systemctl disable --now msgplatform-backup.timer 2>/dev/null",
        {"test_backup_timer_enabled_and_waiting"},
    ),
    (
        "the last backup run failed",
        f"chmod 600 {ROOT_DIR}/bin/backup.sh && (systemctl start msgplatform-backup.service 2>/dev/null; true)",
        {"test_last_backup_run_succeeded"},
    ),
    (
        "every backup stale",
        "cd /var/backups/msgplatform && i=0 && for b in $(ls | grep -E '^[0-9]{8}T[0-9]{6}Z$'); do "
        "i=$((i+1)); mv $b $(printf '202001%02dT000000Z' $i); done",
        {"test_newest_backup_is_fresh"},
    ),
    # Through Chatwoot's API with the admin's token, as in its admin app.
    (
        "Chatwoot's people and wiring changed by hand",
        None,
        {"test_chatwoot_has_exactly_the_people_teams_labels_and_bot_of_group_data"},
    ),
    # Last: the drifts above go through Directus's API.
    ("Directus stopped", "docker stop msgplatform-directus-1 >/dev/null", {"test_every_service_running_and_healthy"}),
]

# Traefik is recreated before its route is edited: the edit must come after its start.
BATCH_EDGE_AND_DAEMON = [
    ("the kernel's INPUT policy opened", "iptables -P INPUT ACCEPT", {"test_ufw_rules_loaded_in_kernel"}),
    ("a hole in DOCKER-USER", "iptables -I DOCKER-USER -j ACCEPT", {"test_docker_user_guard_in_place"}),
    (
        "Traefik recreated with Docker's default capabilities",
        traefik_with_default_capabilities(),
        {"test_least_privilege_per_container"},
    ),
    (
        "a route edited in Traefik's configuration",
        f"sed -i 's/sandbox.test/drift.test/' {ROOT_DIR}/edge/traefik/dynamic_config.yml",
        {"test_traefik_dashboard_not_published_and_routes_complete", "test_services_run_their_current_configuration"},
    ),
    (
        "daemon.json lets containers talk on the default bridge",
        'sed -i \'s/"icc": false/"icc": true/\' /etc/docker/daemon.json',
        {"test_docker_daemon_settings"},
    ),
    (
        "the unused-protocol blacklist removed",
        "rm /etc/modprobe.d/60-platform-unused-protocols.conf",
        {"test_kernel_modules_login_defaults_and_banner"},
    ),
    # Access widened: the deploy restarts Redis (live ACL users are not kept), drops the role (it owns
    # nothing) and rewrites the rules.
    ("a Redis ACL user added live", None, {"test_redis_requires_its_password_and_never_evicts"}),
    ("a PostgreSQL login made by hand, with a grant", None, {"test_databases_and_roles"}),
    (
        "pgBackRest's repository emptied",
        "rm -rf /var/backups/msgplatform-pitr/*",
        {
            "test_pgbackrest_stanza_is_valid",
            "test_wal_archive_is_current",
            "test_last_full_pgbackrest_backup_is_at_most_8_days_old",
        },
    ),
    (
        "a line added to PostgreSQL's live client-authentication file",
        f"echo 'host all all 0.0.0.0/0 trust' >> {ROOT_DIR}/config/pg_hba.conf",
        {"test_postgresql_lets_in_only_by_the_managed_rules"},
    ),
]


def inject(sandbox, batch):
    for name, command, _ in batch:
        if name == "Redis reconfigured live":
            redis(sandbox, "config", "set", "maxmemory-policy", "allkeys-lru")
        elif name == "an extra database grant, and an app's role given CREATEROLE":
            psql(sandbox, "n8n", "grant connect on database n8n to chatwoot")
            psql(sandbox, "postgres", "alter role directus createrole")
        elif name == "a Redis ACL user added live":
            redis(sandbox, "acl", "setuser", "intruder", "on", "nopass", "~*", "+@all")
        elif name == "a PostgreSQL login made by hand, with a grant":
            psql(sandbox, "postgres", "create role intruder login password 'drift'")
            psql(sandbox, "n8n", "grant connect on database n8n to intruder")
        elif name == "n8n's Directus user given the admin role":
            user = json.loads(directus_api(sandbox, "GET", f"/users?filter[email][_eq]={N8N_DIRECTUS_USER}&fields=id"))[
                "data"
            ][0]
            role = json.loads(directus_api(sandbox, "GET", "/roles?fields=id&limit=1"))["data"][0]
            directus_api(sandbox, "PATCH", f"/users/{user['id']}", {"role": role["id"]})
        elif name == "Chatwoot's people and wiring changed by hand":
            chatwoot_by_hand()
        elif name == "Directus's Public policy given read on the business context":
            public = json.loads(directus_api(sandbox, "GET", "/policies?filter[name][_eq]=%24t:public_label&fields=id"))
            assert directus_api(
                sandbox,
                "POST",
                "/permissions",
                {
                    "policy": public["data"][0]["id"],
                    "collection": "business_context",
                    "action": "read",
                    "fields": ["*"],
                },
            )
        elif name == "n8n's Directus policy widened":
            policy = json.loads(directus_api(sandbox, "GET", "/policies?filter[name][_eq]=n8n%20automation&fields=id"))[
                "data"
            ][0]
            assert directus_api(
                sandbox,
                "POST",
                "/permissions",
                {"policy": policy["id"], "collection": "directus_users", "action": "read", "fields": ["*"]},
            )
        else:
            sandbox.sh(command)


def chatwoot_by_hand():
    """A member out of a team and of an inbox, a team and an inbox no longer auto-assigning, an agent made an
    administrator, a label recoloured, the bot disconnected from an inbox and given an outgoing URL, the account
    webhook to n8n subscribed to more events, the web chat moved to another website."""
    chatwoot = Host(NAME, PORT).chatwoot
    teams = {t["name"]: t for t in chatwoot("GET", "/teams")}
    inboxes = {i["name"]: i for i in chatwoot("GET", "/inboxes")["payload"]}
    agents = {a["email"]: a for a in chatwoot("GET", "/agents")}
    sales, team = GROUP_DATA["departments"][0], teams["technical leads"]
    chatwoot("PATCH", f"/teams/{team['id']}/team_members", {"user_ids": []})
    chatwoot("PATCH", f"/teams/{teams[sales['team'].lower()]['id']}", {"allow_auto_assign": False})
    inbox = inboxes[sales["inbox"]]
    members = [m["id"] for m in chatwoot("GET", f"/inbox_members/{inbox['id']}")["payload"]]
    chatwoot(
        "PATCH",
        "/inbox_members",
        {"inbox_id": inbox["id"], "user_ids": [i for i in members if i != agents["supervisor@example.com"]["id"]]},
    )
    chatwoot("PATCH", f"/inboxes/{inbox['id']}", {"enable_auto_assignment": False})
    chatwoot("PATCH", f"/agents/{agents[sales['agents'][0]['email']]['id']}", {"role": "administrator"})
    label = next(x for x in chatwoot("GET", "/labels")["payload"] if x["title"] == "escalated")
    chatwoot("PATCH", f"/labels/{label['id']}", {"color": "#000000"})
    chatwoot(
        "POST", f"/inboxes/{inboxes[GROUP_DATA['departments'][1]['inbox']]['id']}/set_agent_bot", {"agent_bot": None}
    )
    [bot] = [b for b in chatwoot("GET", "/agent_bots") if b["name"] == "Platform triage"]
    chatwoot("PATCH", f"/agent_bots/{bot['id']}", {"outgoing_url": "http://n8n:5678/webhook/chatwoot-events"})
    [hook] = chatwoot("GET", "/webhooks")["payload"]["webhooks"]
    chatwoot("PATCH", f"/webhooks/{hook['id']}", {"subscriptions": ["message_created", "conversation_updated"]})
    web = inboxes[GROUP_DATA["web_chats"][0]["inbox"]]
    chatwoot("PATCH", f"/inboxes/{web['id']}", {"channel": {"website_url": "https://elsewhere.example.org"}})


@pytest.mark.parametrize(
    "batch", [BATCH_HOST_AND_STACK, BATCH_EDGE_AND_DAEMON], ids=["host-and-stack", "edge-and-daemon"]
)
def test_each_drift_fails_its_check_and_one_deploy_repairs_it(sandbox, batch):
    checks = [check for _, _, failing in batch for check in failing]
    assert len(checks) == len(set(checks)), (
        "two drifts of one batch share a check: their failures could not be told apart"
    )
    rc, failed, log = sandbox.audit()
    assert rc == 0, f"the audit failed before any drift: {failed}"
    try:
        inject(sandbox, batch)
        rc, failed, log = sandbox.audit()
        assert set(failed) == set(checks), (
            f"missed: {sorted(set(checks) - set(failed))}, failed besides: "
            f"{sorted(set(failed) - set(checks))}\n{log[-3000:]}"
        )
    finally:
        # The repair, whatever the audit said: the tests after this one need a sound host.
        rc, results, log = sandbox.deploy()
    assert rc == 0, log[-3000:]
    rc, failed, log = sandbox.audit()
    assert rc == 0, f"still drifted after one deploy: {failed}\n{log[-3000:]}"
    rc, results, log = sandbox.deploy()
    assert rc == 0 and changed(results) == [], f"a second deploy changed: {changed(results)}"


def ssh(user, **options):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect(
            "127.0.0.1",
            port=int(PORT),
            username=user,
            key_filename=str(ROOT / ".sandbox" / "id_ed25519"),
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
            **options,
        )
        return client.exec_command("id -un")[1].read().decode().strip()
    except (OSError, paramiko.SSHException) as e:
        return f"refused: {type(e).__name__}"
    finally:
        client.close()


def test_ssh_takes_only_modern_algorithms(sandbox):
    assert ssh("root") == "root"
    legacy = {"ciphers": ["aes128-ctr", "aes192-ctr", "aes256-ctr", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]}
    assert ssh("root", disabled_algorithms=legacy).startswith("refused"), "sshd accepted a CBC cipher"
    assert ssh(
        "root",
        disabled_algorithms={
            "kex": [
                "curve25519-sha256@libssh.org",
                "diffie-hellman-group16-sha512",
                "diffie-hellman-group-exchange-sha256",
            ]
        },
    ).startswith("refused"), "sshd accepted a NIST-curve or SHA-1 key exchange"


def test_root_login_off_only_while_the_deploy_logs_in_as_the_admin_user(sandbox):
    rc, results, log = sandbox.deploy("--data", "ssh_root_login=no")
    assert rc != 0 and results is None and "locks root out while this deploy logs in as root" in log, log[-2000:]

    rc, results, log = sandbox.deploy("--user", "ops", "--sudo", "--data", "ssh_root_login=no")
    assert rc == 0, log[-3000:]
    assert "permitrootlogin no" in sandbox.sh("sshd -T").splitlines()
    assert (ssh("ops"), ssh("root")) == ("ops", "refused: AuthenticationException")

    rc, results, log = sandbox.deploy("--user", "ops", "--sudo")
    assert rc == 0, log[-3000:]
    assert (ssh("ops"), ssh("root")) == ("ops", "root")
    rc, results, log = sandbox.deploy()
    assert rc == 0 and changed(results) == [], f"a rerun as root changed: {changed(results)}"


def test_a_role_that_owns_data_is_named_and_not_dropped(sandbox):
    """A role group data does not allow that owns objects: the deploy refuses before changing anything, naming the
    role and the key that would allow it; allowed there, the deploy goes on and keeps it (with LOGIN only)."""
    psql(sandbox, "postgres", "create role squatter login createdb")
    psql(sandbox, "n8n", "create table squatter_notes (note text); alter table squatter_notes owner to squatter")
    try:
        rc, _, log = sandbox.deploy()
        assert rc != 0 and "postgres_roles_allowed" in log and "role 'squatter' owns 1 objects" in log, log[-3000:]
        assert "nothing was changed on the host" in log
        assert psql(sandbox, "n8n", "select tableowner from pg_tables where tablename = 'squatter_notes'") == "squatter"
        rc, _, log = sandbox.deploy("--data", 'postgres_roles_allowed=["squatter"]')
        assert rc == 0, log[-3000:]
        assert psql(sandbox, "postgres", "select rolcreatedb from pg_roles where rolname = 'squatter'") == "f"
        rc, failed, _ = sandbox.audit("tests/audit/test_stack.py")
        assert "test_databases_and_roles" in failed, "the audit with the shipped group data let the role pass"
    finally:
        psql(sandbox, "n8n", "drop table if exists squatter_notes")
        psql(sandbox, "postgres", "drop role if exists squatter")
        rc, _, log = sandbox.deploy()  # the scripts back as the shipped group data writes them
    assert rc == 0, log[-3000:]
    rc, failed, _ = sandbox.audit("tests/audit/test_stack.py")
    assert rc == 0, failed
