"""Last of the end-to-end tests: afterwards the host refuses this address's SSH for 30 s."""

import socket

from conftest import PORT, changed


def ssh_answers():
    try:
        with socket.create_connection(("127.0.0.1", int(PORT)), timeout=3) as conn:
            conn.settimeout(3)
            return conn.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def test_ssh_rate_limit_refuses_a_burst(sandbox):
    # Last: afterwards the host refuses this address's SSH for 30 s.
    rc, results, log = sandbox.deploy("--data", "ssh_rate_limit=true")
    assert rc == 0, log[-3000:]
    assert "UFW: only SSH and web traffic in" in changed(results)
    answers = [ssh_answers() for _ in range(10)]
    assert answers[0] and not all(answers), f"SSH answers to a burst of 10 connections: {answers}"
