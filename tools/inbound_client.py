"""Meta's side of the inbound path, for the sandbox: signed WhatsApp webhooks sent over
TLS to a sandbox host's n8n, and what came of them read back from Chatwoot (its API,
from inside the host), the vendors' simulator and Directus. Used by `make demo`, the
end-to-end tests and bench/inbound.py."""

import hashlib
import hmac
import http.client
import json
import runpy
import shlex
import socket
import ssl
import time
import urllib.request
from pathlib import Path

from tools.sandbox_host.common import run_exec

ROOT = Path(__file__).resolve().parents[1]
GROUP_DATA = runpy.run_path(str(ROOT / "group_data" / "sandbox.py"))
DC = "docker compose -p msgplatform -f /opt/msgplatform/compose.yaml"
_END = "@@end-of-answer@@"  # between the answers of one exec's calls
POSTER = "platformPoster02"  # 02-social-media-auto-poster's id


def vendor_secret(name):
    return dict(line.split("=", 1) for line in (ROOT / ".sandbox" / "vendors.env").read_text().split())[name]


def whatsapp_message(number, phone_number_id, text, sender, wamid=None):
    """A WhatsApp Cloud API `messages` webhook payload, as Meta sends it."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": GROUP_DATA["whatsapp_business_account_id"],
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": number.lstrip("+"),
                                "phone_number_id": phone_number_id,
                            },
                            "contacts": [{"profile": {"name": f"Customer {sender[-4:]}"}, "wa_id": sender}],
                            "messages": [
                                {
                                    "from": sender,
                                    "id": wamid or f"wamid.SBX{time.time_ns()}",
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def signed(payload, secret=None):
    """(raw body, headers) with X-Hub-Signature-256 over the raw bytes, as Meta signs."""
    raw = json.dumps(payload).encode()
    key = (secret or vendor_secret("PLATFORM_META_APP_SECRET")).encode()
    return raw, {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest(),
    }


class Host:
    """One sandbox host, by its name and SSH port (its addresses follow from the port)."""

    def __init__(self, name, port):
        self.name = name
        self.address, _, vendors = GROUP_DATA["_sandbox_addresses"](port)
        self.simulator_url = f"http://{vendors}:8090"

    def sh(self, script):
        out = run_exec(["docker", "exec", self.name, "sh", "-c", script])
        if out.returncode:
            raise RuntimeError(f"{script[:80]!r} failed on {self.name}: {out.stderr[-500:]}")
        return out.stdout

    def webhook(self, method, path, body=b"", headers=None):
        """n8n's webhook `path`, as Meta calls it."""
        return self.https("n8n.sandbox.test", method, f"/webhook/{path}", body, headers)

    def https(self, name, method, path, body=b"", headers=None):
        """HTTPS to `name` at the host's address, verified against the host's ACME root."""
        context = ssl.create_default_context(cafile=str(ROOT / ".sandbox" / f"{self.name}.acme-root.pem"))
        with (
            socket.create_connection((self.address, 443), timeout=30) as raw,
            context.wrap_socket(raw, server_hostname=name.rstrip(".")) as tls,  # a trailing dot: in Host only
        ):
            head = {"Host": name, "Connection": "close", "Content-Length": str(len(body)), **(headers or {})}
            tls.sendall(
                f"{method} {path} HTTP/1.1\r\n".encode()
                + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode()
                + b"\r\n"
                + body
            )
            response = http.client.HTTPResponse(tls)
            response.begin()
            return response.status, response.read().decode()

    def send(self, department, text, sender, wamid=None):
        d = next(d for d in GROUP_DATA["departments"] if d["name"] == department)
        return self.webhook(
            "POST", "whatsapp", *signed(whatsapp_message(d["number"], d["phone_number_id"], text, sender, wamid))
        )

    def deliver_like_meta(self, department, texts_by_sender, **timing):
        """The simulator delivers one message per sender to n8n's webhook as Meta would: signed, and again
        with growing pauses while not answered 2xx in time (sandbox/simulators/sim_meta.py)."""
        d = next(d for d in GROUP_DATA["departments"] if d["name"] == department)
        payloads = [whatsapp_message(d["number"], d["phone_number_id"], text, s) for s, text in texts_by_sender]
        spec = {"address": self.address, "host": "n8n.sandbox.test", "path": "/webhook/whatsapp", "payloads": payloads}
        return self.simulator("POST", "/_sim/meta/deliver", spec | timing)["ids"]

    def simulator(self, method, path, body=None):
        request = urllib.request.Request(
            f"{self.simulator_url}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def chatwoot(self, method, path, body=None, token="chatwoot_api_token", status=False):
        """Chatwoot's API with a token the deploy stored (secrets/<token>: the admin's by default; or a file's
        absolute path on the host), from inside
        the Chatwoot container; the answer, or (HTTP status, answer) with status=True."""
        code, answer = self.chatwoot_calls([(method, path, body)], token)[0]
        return (code, answer) if status else answer

    def chatwoot_calls(self, calls, token="chatwoot_api_token"):
        """[(HTTP status, answer)] of these (method, path, body) calls to Chatwoot's API, made in one exec
        in the Chatwoot container (an exec costs far more CPU than a call: a poller must not load the host)."""
        # The token reaches curl on its stdin (printf is the shell's own), not in its arguments.
        script = "".join(
            f"printf 'api_access_token: %s\\n' \"$T\" | curl -s -w '\\n%{{http_code}}\\n' -X {method} -H @- "
            f"-H 'Content-Type: application/json' {f'-d {shlex.quote(json.dumps(body))}' if body is not None else ''} "
            f'"http://127.0.0.1:3000/api/v1/accounts/$A{path}"; echo {_END}; '
            for method, path, body in calls
        )
        # The token and account id are read on the host and handed over in the environment.
        path = token if token.startswith("/") else f"/opt/msgplatform/secrets/{token}"
        out = self.sh(
            f"T=$(cat {path}) A=$(cat /opt/msgplatform/state/chatwoot-account-id) "
            f"{DC} exec -T -e T -e A chatwoot-web sh -c {shlex.quote(script)}"
        )
        answers = []
        for part in out.split(f"{_END}\n")[: len(calls)]:
            text, _, code = part.rstrip("\n").rpartition("\n")
            answers.append((int(code), json.loads(text) if text.strip() else None))
        return answers

    def conversations(self, since=None):
        """Every conversation, page by page (Chatwoot pages its lists, most recent activity first); with
        `since` (a Unix time), only those active since then: the pages stop at the first older one.
        Four pages at a time."""
        found, page = [], 1
        while True:
            pages = range(page, page + 4)
            for code, answer in self.chatwoot_calls(
                [("GET", f"/conversations?status=all&page={p}", None) for p in pages]
            ):
                if code != 200:
                    raise RuntimeError(f"Chatwoot answered {code} to a conversations list: {str(answer)[:300]}")
                data = answer["data"]
                found += [c for c in data["payload"] if since is None or c["last_activity_at"] >= since]
                older = since is not None and any(c["last_activity_at"] < since for c in data["payload"])
                if older or not data["payload"] or page * 25 >= data.get("meta", {}).get("all_count", 0):
                    return found
                page += 1

    def conversations_by_sender(self, senders, since=None):
        """{WhatsApp id: its conversations} for these senders, among those active since `since`."""
        found = {s: [] for s in senders}
        for conversation in self.conversations(since=since):
            phone = str(((conversation.get("meta") or {}).get("sender") or {}).get("phone_number", "")).lstrip("+")
            if phone in found:
                found[phone].append(conversation)
        return found

    def conversations_of(self, sender, messages=True):
        """Conversations of the contact with this WhatsApp id (with their messages): the contact found by
        Chatwoot's search, then its conversations."""
        found = []
        for contact in self.chatwoot("GET", f"/contacts/search?q={sender}")["payload"]:
            if sender in str(contact.get("phone_number") or ""):
                found += self.chatwoot("GET", f"/contacts/{contact['id']}/conversations")["payload"]
        for conversation in found if messages else ():
            conversation["messages"] = self.chatwoot("GET", f"/conversations/{conversation['id']}/messages")["payload"]
        return found

    def directus(self, path):
        script = f'wget -qO- --header "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:8055{path}"'
        out = self.sh(f"{DC} exec -T directus sh -c {shlex.quote(script)}")
        return json.loads(out)["data"] if out.strip() else []

    def directus_as(self, token, method, path, body=None):
        """(HTTP status, answer) of Directus's API called with the token in secrets/<token>,
        from inside the Directus container (node's fetch; the token stays in the environment)."""
        script = (
            'fetch("http://127.0.0.1:8055" + process.env.P, {method: process.env.M, body: process.env.B || undefined, '
            'headers: {Authorization: "Bearer " + process.env.T, "Content-Type": "application/json"}})'
            '.then(async (r) => console.log(r.status + " " + await r.text()))'
        )
        env = (
            f"T=$(cat /opt/msgplatform/secrets/{token}) M={method} P={shlex.quote(path)} "
            f"B={shlex.quote(json.dumps(body) if body is not None else '')}"
        )
        out = self.sh(f"{env} {DC} exec -T -e T -e M -e P -e B directus node -e {shlex.quote(script)}").strip()
        status, _, text = out.partition(" ")
        return int(status), json.loads(text) if text.strip() else None

    def run_poster(self):
        """One run of 02-social-media-auto-poster now, by n8n's CLI (its "Run now" trigger)."""
        script = f"{DC} run --rm --no-deps -T --entrypoint sh n8n -c 'n8n execute --id={POSTER} --rawOutput'"
        out = run_exec(["docker", "exec", self.name, "sh", "-c", script])
        if out.returncode:  # n8n prints the execution's error after its data, on stdout
            raise RuntimeError(
                f"the poster's run failed: {out.stdout.rpartition('Execution error:')[2][:800]} {out.stderr[-300:]}"
            )
        return out.stdout

    def post_logs(self, promotion):
        return self.directus(f"/items/social_post_logs?filter[promotion][_eq]={promotion}&sort=id&limit=-1")

    def triage_log(self, conversation_id):
        return self.directus(f"/items/triage_log?filter[conversation_id][_eq]={conversation_id}&sort=-id")

    def sent_to(self, sender):
        return [
            r
            for r in self.simulator("GET", "/_sim/requests")
            if r["service"] == "whatsapp"
            and r["method"] == "POST"
            and r["path"].endswith("/messages")
            and (r["body"] or {}).get("to") == sender
        ]


CONTAINER_MEMORY = r"""for id in $(docker ps -q --no-trunc); do
  info=$(docker inspect -f '{{.Name}} {{.RestartCount}}' $id | tr -d /)
  dir=$(dirname "$(find /sys/fs/cgroup -path "*$id*" -name memory.stat -print -quit 2>/dev/null)")
  rss=$(awk '$1 == "total_rss" || $1 == "anon" {print $2; exit}' $dir/memory.stat)
  limit=$(cat $dir/memory.limit_in_bytes 2>/dev/null || cat $dir/memory.max)
  echo "$info $rss $limit"
done"""


def container_memory(sh):
    """{container: (RSS MiB, limit MiB, restarts)} of the host's running containers, from each one's memory
    cgroup (v1 or v2); `sh` runs a script on the host."""
    memory = {}
    for line in sh(CONTAINER_MEMORY).splitlines():
        name, restarts, rss, limit = line.split()
        memory[name] = (int(rss) / 2**20, int(limit) / 2**20 if limit.isdigit() else 0, int(restarts))
    return memory


def wait_for(what, probe, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout} s")
