"""The one-read file checks: the directory scan as parsed, and what counts as unchanged."""

import subprocess

from platform_deploy import converge
from platform_deploy.converge import ReadAhead


def test_managed_tree_parsing():
    tree = converge.ManagedTree().process(
        [
            "d 755 root root /opt/msgplatform",
            "f 640 root root /opt/msgplatform/compose.yaml",
            "f 600 root root /opt/msgplatform/big.tar",
            "sha1 " + "a" * 40 + "  /opt/msgplatform/compose.yaml",
        ]
    )
    assert tree == {
        "/opt/msgplatform": ("d", "755", "root", "root", None),
        "/opt/msgplatform/compose.yaml": ("f", "640", "root", "root", "a" * 40),
        "/opt/msgplatform/big.tar": ("f", "600", "root", "root", None),  # not hashed: always rewritten if managed
    }


def test_unchanged_only_when_kind_mode_owner_and_content_match(monkeypatch):
    class Host:
        name = "h"

    monkeypatch.setattr(converge, "host", Host)
    converge._scans["h"] = (
        {"/etc/docker"},
        {
            "/etc/docker/daemon.json": ("f", "644", "root", "root", "b" * 40),
            "/etc/docker": ("d", "755", "root", "root", None),
        },
    )
    assert converge._has("/etc/docker/daemon.json", "f", "644", "root", "root", "b" * 40)
    assert not converge._has("/etc/docker/daemon.json", "f", "600", sha1="b" * 40)
    assert not converge._has("/etc/docker/daemon.json", "f", "644", sha1="c" * 40)
    assert not converge._has("/etc/docker/daemon.json", "d")
    assert converge._has("/etc/docker", "d", "755")
    assert not converge._has("/etc/docker/other.json", "f")
    assert isinstance(converge.absent("x", "/etc/docker/other.json"), converge.Unchanged)


def test_read_ahead_runs_the_commands_at_once_and_keeps_each_output_and_status(tmp_path):
    flag = tmp_path / "flag"
    # The first waits (2 s at most) for a file only the last one creates: it sees it only if they run at once.
    waits = f"for i in $(seq 200); do [ -e {flag} ] && echo together && exit 0; sleep 0.01; done; echo in turn"
    commands = [waits, "echo one; printf two", "echo partial; exit 3", "true", f"touch {flag}"]
    out = subprocess.run(["sh", "-c", ReadAhead().command(commands=commands)], capture_output=True, text=True)
    assert ReadAhead().process(out.stdout.splitlines()) == {
        0: (True, ["together"]),
        1: (True, ["one", "two"]),
        2: (False, ["partial"]),
        3: (True, []),
        4: (True, []),
    }


def test_reads_in_one_container_share_one_exec_and_each_gets_its_own_output(tmp_path, monkeypatch):
    # `docker exec <container> cmd...` runs cmd here, and counts the execs.
    docker = tmp_path / "docker"
    docker.write_text(f'#!/bin/sh\necho "$2" >> {tmp_path}/execs\nshift 2\nexec "$@"\n')
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")

    class Lines(converge.ContainerRead):
        @staticmethod
        def default():
            return []

        def process(self, output):
            return output

    class Two(Lines):
        def script(self):
            return "echo a; echo; echo '@part 1'; printf 'b'"  # a forged marker is output like any line

    class Nothing(Lines):
        def script(self):
            return "true"

    class Plain(converge.FactBase):
        def command(self):
            return "echo plain"

        def process(self, output):
            return output

    class Host:
        name = "h"

        @staticmethod
        def get_fact(cls, **kwargs):
            command = cls().command(**kwargs)
            out = subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout
            return cls().process(out.splitlines())

    monkeypatch.setattr(converge, "host", Host)
    reads = [(Two, {"container": "pg"}), (Plain, {}), (Nothing, {"container": "pg"}), (Two, {"container": "redis"})]
    converge.read_ahead(reads)
    assert (tmp_path / "execs").read_text().split() in (["pg", "redis"], ["redis", "pg"])
    assert converge.fact(Two, container="pg") == ["a", "", "@part 1", "b"]
    assert converge.fact(Nothing, container="pg") == []
    assert converge.fact(Plain) == ["plain"]
    assert converge.peek(Two, container="redis") == converge.fact(Two, container="redis") == ["a", "", "@part 1", "b"]
