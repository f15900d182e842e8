# The local sandbox host that `make sandbox` starts (tools/sandbox.py): a systemd
# container reached over real SSH on 127.0.0.1. SANDBOX_NAME / SANDBOX_SSH_PORT pick
# another one (the end-to-end tests use their own).
import os

_name = os.environ.get("SANDBOX_NAME", "sandbox-1")
_state = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".sandbox")

sandbox = [
    (
        _name,
        {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": int(os.environ.get("SANDBOX_SSH_PORT", "2222")),
            "ssh_user": "root",
            "ssh_key": os.path.join(_state, "id_ed25519"),
            "ssh_known_hosts_file": os.path.join(_state, f"{_name}.known_hosts"),
            "ssh_strict_host_key_checking": "accept-new",
        },
    ),
]
