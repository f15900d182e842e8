"""The edge, checked from outside the host: a probe from this machine to the sandbox
host's own address (one pass, a bounded list of ports) must find SSH, 80 and 443 only,
also after a port is published by mistake; without the DOCKER-USER guard it must not.
TLS for real: the real Traefik gets its certificates from the host's own ACME server
(Pebble), which validates each HTTP-01 challenge against the host's port 80."""

import http.client
import json
import socket
import ssl
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (
    DC,
    GROUP_DATA,
    PORT,
    ROOT,
    changed,
    read_app_items,
    read_marks,
    run,
    wait_healthy,
    write_app_items,
    write_marks,
)

# Every privileged port, and every port the stack's containers listen on inside.
PORTS = sorted(set(range(1, 1025)) | {2375, 2376, 3000, 3001, 3002, 5432, 5678, 6379, 8055, 8080, 8082, 9000})
MISTAKE_PORT = 8080


HOSTS = {
    "chatwoot": "chat.sandbox.test",
    "n8n": "n8n.sandbox.test",
    "directus": "cms.sandbox.test",
    "pangolin": "pangolin.sandbox.test",
}
# A path each app answers without logging in.
APP_PATHS = {"chatwoot": "/", "n8n": "/healthz", "directus": "/server/ping", "pangolin": "/"}


def host_address(sandbox):
    """The host's address on the sandbox network (fixed; the one its ACME server validates)."""
    return GROUP_DATA["_sandbox_addresses"](PORT)[0]


@pytest.fixture(scope="module")
def address(sandbox):
    return host_address(sandbox)


def acme_root(sandbox):
    return ROOT / ".sandbox" / f"{sandbox.name}.acme-root.pem"


def https(sandbox, address, name, path="/", timeout=180):
    """GET over TLS, verified against the ACME server's root for `name`; waits for the
    certificate (Traefik asks for it in the background). Returns (status, body, certificate)."""
    context = ssl.create_default_context(cafile=str(acme_root(sandbox)))
    deadline, error = time.time() + timeout, None
    while time.time() < deadline:
        try:
            with (
                socket.create_connection((address, 443), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                certificate = tls.getpeercert()
                tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
                response = http.client.HTTPResponse(tls)
                response.begin()
                return response.status, response.read(), certificate
        except (ssl.SSLError, OSError) as e:
            error = e
            time.sleep(3)
    raise AssertionError(f"no verified TLS for {name} within {timeout} s: {error}")


def open_ports(address, ports=PORTS):
    def answers(port):
        try:
            with socket.create_connection((address, port), timeout=1.5):
                return port
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=128) as pool:
        return {p for p in pool.map(answers, ports) if p}


def get(address, port, host, path="/"):
    conn = http.client.HTTPConnection(address, port, timeout=10)
    conn.request("GET", path, headers={"Host": host})
    response = conn.getresponse()
    return response.status, response.getheader("Location"), response.read()


def test_probe_from_outside_finds_ssh_and_web_only(sandbox, address):
    assert open_ports(address) == {22, 80, 443}


@pytest.mark.parametrize("app", HOSTS)
def test_each_hostname_reaches_its_app_over_verified_tls(sandbox, address, app):
    host = HOSTS[app]
    status, location, _ = get(address, 80, host, "/some/path")
    assert status in (301, 308) and location == f"https://{host}/some/path"  # a permanent redirect
    status, body, certificate = https(sandbox, address, host, APP_PATHS[app])
    assert ("DNS", host) in certificate["subjectAltName"]
    if app == "pangolin":
        # Its routes pass Pangolin's Badger plugin, which Traefik downloads from its plugin
        # catalogue: unreachable here, so Traefik disables the routes (TLS is still checked).
        return
    assert status == 200, body[:300]
    assert {
        "chatwoot": b'"stand_in": "chatwoot"',
        "n8n": b'"status":"ok"',
        "directus": b"pong",
        "pangolin": b"pangolin",
    }[app] in body.replace(b'"stand_in":"', b'"stand_in": "')


def on_the_edge(sandbox, *command):
    """A throwaway container on the edge network (Traefik's image has no shell tools)."""
    image = sandbox.sh("docker inspect -f '{{.Config.Image}}' msgplatform-chatwoot-web-1").strip()
    return run(
        [
            "docker",
            "exec",
            sandbox.name,
            "docker",
            "run",
            "--rm",
            "--network",
            "msgplatform_edge",
            "--entrypoint",
            command[0],
            image,
            *command[1:],
        ]
    )


def test_from_the_edge_the_apps_answer_and_the_data_services_do_not(sandbox):
    for url in ("http://chatwoot-web:3000/api", "http://n8n:5678/healthz", "http://directus:8055/server/ping"):
        assert on_the_edge(sandbox, "wget", "-qO-", url).stdout, f"{url} did not answer from the edge"
    for service, port in (("postgres", 5432), ("redis", 6379)):
        probe = f"import socket; socket.create_connection(('{service}', {port}), timeout=3)"
        assert on_the_edge(sandbox, "python3", "-c", probe).returncode != 0, f"{service} answers on the edge network"


def test_a_port_published_by_mistake_stays_closed(sandbox, address):
    image = sandbox.sh("docker inspect -f '{{.Config.Image}}' msgplatform-chatwoot-web-1").strip()  # it has python3
    sandbox.sh(
        f"docker rm -f mistake >/dev/null 2>&1; docker run -d --name mistake -p {MISTAKE_PORT}:8000 "
        f"--entrypoint python3 {image} -m http.server 8000"
    )
    try:
        time.sleep(3)  # the server is up: the bypass below reaches it
        assert open_ports(address, [MISTAKE_PORT]) == set(), "a mistakenly published port is reachable from outside"

        # Without the guard, Docker's DNAT walks past UFW: the probe must see the bypass.
        sandbox.sh("iptables -F DOCKER-USER && iptables -A DOCKER-USER -j RETURN")
        assert open_ports(address, [MISTAKE_PORT]) == {MISTAKE_PORT}, (
            "the probe cannot see the bypass it guards against"
        )
        rc, failed, log = sandbox.audit("tests/audit/test_edge.py")
        assert "test_docker_user_guard_in_place" in failed, log[-3000:]

        # Allowed, as an operator's own container would be (the deploy stops at one group data does not allow).
        rc, results, log = sandbox.deploy("--data", 'containers_allowed=["mistake"]')
        assert rc == 0, log[-3000:]
        assert "UFW reloaded with the Docker bypass guard" in changed(results)
        assert open_ports(address, [MISTAKE_PORT]) == set()

        sandbox.sh("systemctl restart docker")
        assert open_ports(address, [MISTAKE_PORT]) == set(), "the guard did not survive a Docker restart"
    finally:
        sandbox.sh("docker rm -f mistake", check=False)


def serials(sandbox, address):
    return {app: https(sandbox, address, host)[2]["serialNumber"] for app, host in HOSTS.items()}


def test_host_restart_brings_back_the_stack_its_data_and_the_guard(sandbox, address):
    write_marks(sandbox, "restart")
    write_app_items(sandbox, "restart")
    data = read_marks(sandbox), read_app_items(sandbox)
    issued = serials(sandbox, address)
    restarted = run(["docker", "restart", "-t", "60", sandbox.name], timeout=300)
    assert restarted.returncode == 0
    wait_healthy(sandbox, timeout=300)
    assert (read_marks(sandbox), read_app_items(sandbox)) == data
    assert data[1] == ("e2e restart", "restart")
    assert open_ports(host_address(sandbox)) == {22, 80, 443}  # the address may change with the restart
    rc, failed, log = sandbox.audit()
    assert rc == 0, log[-3000:]
    rc, results, log = sandbox.deploy()
    assert rc == 0 and changed(results) == [], f"a rerun after the restart changed: {changed(results)}"
    # The certificates came back from acme.json: none was issued again.
    assert serials(sandbox, address) == issued


def test_a_failed_challenge_is_logged_and_the_other_names_keep_serving(sandbox, address):
    acme = GROUP_DATA["_sandbox_addresses"](PORT)[1]
    # The ACME server's DNS sends this one name elsewhere: its HTTP-01 challenge cannot pass.
    request = urllib.request.Request(
        f"http://{acme}:8055/add-a",
        method="POST",
        data=json.dumps({"host": "broken.sandbox.test.", "addresses": ["10.213.77.3"]}).encode(),
    )
    urllib.request.urlopen(request, timeout=10).close()
    try:
        rc, results, log = sandbox.deploy("--data", 'edge_hostnames={"pangolin": "broken"}')
        assert rc == 0, log[-3000:]
        deadline = time.time() + 120
        while time.time() < deadline and "broken.sandbox.test" not in (logs := sandbox.sh(f"{DC} logs traefik")):
            time.sleep(3)
        failure = [
            line
            for line in logs.splitlines()
            if "Unable to obtain ACME certificate" in line and "broken.sandbox.test" in line
        ]
        assert failure, logs[-3000:]
        for app in ("chatwoot", "n8n", "directus"):
            assert https(sandbox, address, HOSTS[app], APP_PATHS[app])[0] == 200
    finally:
        rc, results, log = sandbox.deploy()
        assert rc == 0, log[-3000:]
