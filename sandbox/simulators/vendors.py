"""SIMULATOR of the vendors' APIs the platform calls, for the sandbox only (tools/sandbox.py
runs it beside each sandbox host; production's base URLs are the vendors').

It follows the published request and response shapes, and records every request so that
tests assert on what the platform sent, not only on what it got back:

- WhatsApp Cloud API (graph.facebook.com): `GET /{version}/{waba_id}/message_templates`
  (Chatwoot checks an inbox's credentials with it), `POST /{version}/{phone_number_id}/messages`.
  A request without the expected access token gets Graph's error 190.
- Anthropic Messages API (api.anthropic.com): `POST /v1/messages`, answering the forced
  `classify` tool call with scripted intent, confidence and reply, or a scripted error
  (429, 500, 529) or delay.

Control (tests and `make demo`): `GET /_sim/requests`, `POST /_sim/reset`,
`POST /_sim/anthropic {"rules": [{"match": "refund", "intent": "billing", "confidence": 0.4}, ...]}`
(the first rule whose `match` is in the customer's message wins; also `error`, `delay`),
`POST /_sim/whatsapp {"token": "..."}` (the access token it accepts).

It proves the platform's requests match the vendors' contracts as this file states them;
never the vendors' own behaviour (rate limits, template rules, Claude's judgement).
"""

import json
import os
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"requests": [], "rules": [], "whatsapp_token": os.environ.get("SIM_WHATSAPP_TOKEN", "")}
DEFAULT_CLASSIFICATION = {"intent": "general", "confidence": 0.95,
                          "reply": "Thanks for your message! A member of our team will follow up shortly.",
                          "summary": "General enquiry."}
ANTHROPIC_ERRORS = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def graph_error(code, message, status=400):
    return status, {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": uuid.uuid4().hex[:11]}}


class Handler(BaseHTTPRequestHandler):
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
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {"_unparsed": raw.decode(errors="replace")}

    def _handle(self, method):
        path, _, query = self.path.partition("?")
        body = self._body() if method == "POST" else {}
        if path.startswith("/_sim/"):
            return self._answer(*self._control(method, path, body))
        service = "anthropic" if path.startswith("/v1/") else "whatsapp"
        record = {"service": service, "method": method, "path": path, "query": query, "body": body, "at": time.time(),
                  "headers": {k.lower(): v for k, v in self.headers.items() if k.lower() in ("authorization", "x-api-key", "anthropic-version", "content-type")}}
        with LOCK:
            STATE["requests"].append(record)
        status, answer = (self._anthropic(body) if service == "anthropic" else self._whatsapp(method, path, query, body))
        self._answer(status, answer)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def _control(self, method, path, body):
        with LOCK:
            if path == "/_sim/requests":
                return 200, STATE["requests"]
            if path == "/_sim/reset" and method == "POST":
                STATE["requests"].clear()
                STATE["rules"] = []
                return 200, {"ok": True}
            if path == "/_sim/anthropic" and method == "POST":
                STATE["rules"] = list(body.get("rules", []))
                return 200, {"ok": True}
            if path == "/_sim/whatsapp" and method == "POST":
                STATE["whatsapp_token"] = body.get("token", "")
                return 200, {"ok": True}
        return 404, {"error": f"no control endpoint {method} {path}"}

    def _whatsapp(self, method, path, query, body):
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        token = token or dict(p.partition("=")[::2] for p in query.split("&") if p).get("access_token", "")
        if not STATE["whatsapp_token"] or token != STATE["whatsapp_token"]:
            return graph_error(190, "Invalid OAuth access token - Cannot parse access token", 401)
        if method == "GET" and re.fullmatch(r"/v[0-9.]+/[0-9]+/message_templates", path):
            return 200, {"data": [], "paging": {"cursors": {}}}
        match = re.fullmatch(r"/v[0-9.]+/([0-9]+)/messages", path)
        if method == "POST" and match:
            if body.get("messaging_product") != "whatsapp" or not body.get("to") or body.get("type") not in ("text", "template", "image"):
                return graph_error(100, "(#100) Invalid parameter")
            if body["type"] == "text" and not (body.get("text") or {}).get("body"):
                return graph_error(100, "(#100) The parameter text['body'] is required.")
            return 200, {"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                         "messages": [{"id": f"wamid.SIM{uuid.uuid4().hex.upper()}"}]}
        return graph_error(100, f"Unsupported {method} request to {path}", 400)

    def _anthropic(self, body):
        if not self.headers.get("x-api-key") or not self.headers.get("anthropic-version"):
            return 401, {"type": "error", "error": {"type": "authentication_error", "message": "x-api-key and anthropic-version are required"}}
        if not body.get("model") or not isinstance(body.get("max_tokens"), int) or not body.get("messages"):
            return 400, {"type": "error", "error": {"type": "invalid_request_error", "message": "model, max_tokens and messages are required"}}
        text = json.dumps(body["messages"][-1].get("content"))
        rule = next((r for r in STATE["rules"] if r.get("match", "") in text), {})
        time.sleep(float(rule.get("delay", 0)))
        if rule.get("error"):
            status = int(rule["error"])
            return status, {"type": "error", "error": {"type": ANTHROPIC_ERRORS.get(status, "api_error"), "message": "scripted failure"}}
        tool = (body.get("tool_choice") or {}).get("name") or next((t["name"] for t in body.get("tools", [])), None)
        result = {k: rule.get(k, v) for k, v in DEFAULT_CLASSIFICATION.items()}
        content = ([{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": tool, "input": result}] if tool
                   else [{"type": "text", "text": result["reply"]}])
        return 200, {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": body["model"],
                     "content": content, "stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None,
                     "usage": {"input_tokens": len(text) // 4, "output_tokens": 40}}


if __name__ == "__main__":
    port = int(os.environ.get("SIM_PORT", "8090"))
    print(f"[vendors SIMULATOR] listening on :{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
