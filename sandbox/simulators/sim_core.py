"""The vendors' SIMULATOR's shared core (see vendors.py): the state every vendor records into,
Graph's error shape, and the HTTP handler's JSON plumbing and control endpoints (`/_sim/...`)."""

import email
import email.policy
import json
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

LOCK = threading.Lock()
STATE = {
    "requests": [],
    "rules": [],
    "whatsapp_token": os.environ.get("SIM_WHATSAPP_TOKEN", ""),
    "graph_rules": [],
    "posts": [],
    "containers": {},
    "mail": [],
    "profiles": {},
    "deliveries": {},
    "facebook_token": os.environ.get("SIM_FACEBOOK_PAGE_TOKEN", ""),
    "instagram_token": os.environ.get("SIM_INSTAGRAM_TOKEN", ""),
}
GRAPH_ERRORS = {
    4: "(#4) Application request limit reached",
    10: "(#10) Application does not have permission for this action",
    100: "(#100) Invalid parameter",
    190: "Error validating access token: Session has expired",
    200: "(#200) Permissions error",
    368: "The action attempted has been deemed abusive or is otherwise disallowed",
    9004: "Only photo or video can be accepted as media type.",
    9007: "Media ID is not available",
}


def graph_error(code, message, status=400, **extra):
    return status, {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            **extra,
            "fbtrace_id": uuid.uuid4().hex[:11],
        }
    }


class SimHandler(BaseHTTPRequestHandler):
    """JSON in and out, and the control endpoints; each vendor's module adds its own part
    (a subclass), and vendors.py's Handler routes the requests among them."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.headers.get("Content-Type") or ""
        if "multipart/form-data" in kind:
            form = email.message_from_bytes(f"Content-Type: {kind}\r\n\r\n".encode() + raw, policy=email.policy.HTTP)
            return {
                part.get_param("name", header="content-disposition"): part.get_content() for part in form.iter_parts()
            }
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            if "x-www-form-urlencoded" in kind:  # JSON first: `curl -d '{...}'` labels JSON a form
                return {k: v[-1] for k, v in parse_qs(raw.decode(errors="replace"), keep_blank_values=True).items()}
            return {"_unparsed": raw.decode(errors="replace")}

    def _control(self, method, path, body):
        with LOCK:
            if path == "/_sim/requests":
                return 200, STATE["requests"]
            if path == "/_sim/reset" and method == "POST":
                for key in ("requests", "posts", "mail", "profiles"):
                    STATE[key].clear()
                STATE["containers"].clear()
                STATE["deliveries"].clear()
                STATE["rules"], STATE["graph_rules"] = [], []
                return 200, {"ok": True}
            if path == "/_sim/anthropic" and method == "POST":
                STATE["rules"] = list(body.get("rules", []))
                return 200, {"ok": True}
            if path == "/_sim/whatsapp" and method == "POST":
                STATE["whatsapp_token"] = body.get("token", "")
                return 200, {"ok": True}
            if path == "/_sim/messenger" and method == "POST":
                STATE["profiles"].update(body.get("profiles", {}))
                return 200, {"ok": True}
            if path == "/_sim/graph" and method == "POST":
                STATE["graph_rules"] = [dict(rule) for rule in body.get("rules", [])]
                return 200, {"ok": True}
            if path == "/_sim/graph":
                return 200, {key: STATE[key] for key in ("graph_rules", "posts", "containers")}
            if path == "/_sim/mail":
                return 200, STATE["mail"]
            if path == "/_sim/meta/deliveries":
                return 200, list(STATE["deliveries"].values())
        if path == "/_sim/meta/deliver" and method == "POST":
            from sim_meta import start_deliveries  # its threads take LOCK: not while holding it

            return 200, {"ids": start_deliveries(body)}
        return 404, {"error": f"no control endpoint {method} {path}"}
