"""The edge, checked from outside the host: a probe from this machine to the sandbox
host's own address (one pass, a bounded list of ports) must find SSH, 80 and 443 only,
also after a port is published by mistake; without the DOCKER-USER guard it must not."""

import http.client
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import changed, read_marks, run, wait_healthy, write_marks

# Every privileged port, and every port the stack's containers listen on inside.
PORTS = sorted(set(range(1, 1025)) | {2375, 2376, 3000, 3001, 3002, 5432, 5678, 6379, 8055, 8080, 8082, 9000})
MISTAKE_PORT = 8080


def host_address(sandbox):
    out = run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", sandbox.name])
    return out.stdout.strip()


@pytest.fixture(scope="module")
def address(sandbox):
    return host_address(sandbox)


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


@pytest.mark.parametrize("host, app", [("chat.sandbox.test", "chatwoot"), ("n8n.sandbox.test", "n8n"),
                                       ("cms.sandbox.test", "directus"), ("pangolin.sandbox.test", "pangolin")])
def test_each_hostname_reaches_its_app_through_the_edge(address, host, app):
    status, location, _ = get(address, 80, host, "/some/path")
    assert status == 308 and location == f"https://{host}/some/path"
    # The edge stand-in speaks plain HTTP on 443 (no TLS, no ACME here).
    status, _, body = get(address, 443, host, "/")
    assert status == 200
    assert json.loads(body).get("stand_in") == app or (app == "pangolin" and b"pangolin" in body), body


def test_from_the_edge_the_apps_answer_and_the_data_services_do_not(sandbox):
    traefik = "msgplatform-traefik-1"
    for url in ("http://chatwoot-web:3000/api", "http://n8n:5678/healthz", "http://directus:8055/server/health"):
        assert sandbox.sh(f"docker exec {traefik} wget -qO- {url}", check=False), f"{url} did not answer from the edge"
    for service, port in (("postgres", 5432), ("redis", 6379)):
        probe = f"import socket; socket.create_connection(('{service}', {port}), timeout=3)"
        result = run(["docker", "exec", sandbox.name, "docker", "exec", traefik, "python3", "-c", probe])
        assert result.returncode != 0, f"{service} answers on the edge network"


def test_a_port_published_by_mistake_stays_closed(sandbox, address):
    image = sandbox.sh("docker inspect -f '{{.Config.Image}}' msgplatform-n8n-1").strip()
    sandbox.sh(f"docker rm -f mistake >/dev/null 2>&1; docker run -d --name mistake -p {MISTAKE_PORT}:8000 "
               f"--entrypoint python3 {image} -m http.server 8000")
    try:
        time.sleep(3)  # the server is up: the bypass below reaches it
        assert open_ports(address, [MISTAKE_PORT]) == set(), "a mistakenly published port is reachable from outside"

        # Without the guard, Docker's DNAT walks past UFW: the probe must see the bypass.
        sandbox.sh("iptables -F DOCKER-USER && iptables -A DOCKER-USER -j RETURN")
        assert open_ports(address, [MISTAKE_PORT]) == {MISTAKE_PORT}, "the probe cannot see the bypass it guards against"
        rc, failed, log = sandbox.audit("tests/audit/test_edge.py")
        assert "test_docker_user_guard_in_place" in failed, log[-3000:]

        rc, results, log = sandbox.deploy()
        assert rc == 0, log[-3000:]
        assert "UFW reloaded with the Docker bypass guard" in changed(results)
        assert open_ports(address, [MISTAKE_PORT]) == set()

        sandbox.sh("systemctl restart docker")
        assert open_ports(address, [MISTAKE_PORT]) == set(), "the guard did not survive a Docker restart"
    finally:
        sandbox.sh("docker rm -f mistake", check=False)


def test_host_restart_brings_back_the_stack_its_data_and_the_guard(sandbox):
    write_marks(sandbox, "restart")
    data = read_marks(sandbox)
    restarted = run(["docker", "restart", "-t", "60", sandbox.name], timeout=300)
    assert restarted.returncode == 0
    wait_healthy(sandbox, timeout=300)
    assert read_marks(sandbox) == data
    assert open_ports(host_address(sandbox)) == {22, 80, 443}  # the address may change with the restart
    rc, failed, log = sandbox.audit()
    assert rc == 0, log[-3000:]
    rc, results, log = sandbox.deploy()
    assert rc == 0 and changed(results) == [], f"a rerun after the restart changed: {changed(results)}"
