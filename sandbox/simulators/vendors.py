"""SIMULATOR of the vendors' APIs the platform calls, for the sandbox only (tools/sandbox.py
runs it beside each sandbox host; production's base URLs are the vendors').

It follows the published request and response shapes, and records every request so that
tests assert on what the platform sent, not only on what it got back:

- WhatsApp Cloud API (graph.facebook.com): `GET /{version}/{waba_id}/message_templates`
  (Chatwoot checks an inbox's credentials with it), `POST /{version}/{phone_number_id}/messages`.
  A request without the expected access token gets Graph's error 190.
- Meta Graph API posting (graph.facebook.com, any `/v{n}/` version): a Page's
  `POST /{page_id}/feed` (message, link) -> `{"id": "<page_id>_<n>"}` and
  `POST /{page_id}/photos` (url, caption) -> `{"id", "post_id"}`; Instagram's
  `POST /{ig_user_id}/media` (image_url, caption) -> container `{"id"}`,
  `GET /{container_id}?fields=status_code` (IN_PROGRESS on the first poll, then FINISHED;
  PUBLISHED once published) and `POST /{ig_user_id}/media_publish` (creation_id) -> `{"id"}`,
  error 9007 "Media ID is not available" for a container that is not FINISHED. Parameters
  come as a query string, a form (urlencoded or multipart) or a JSON body; the token as
  `Authorization: Bearer` or `access_token`: the Page's (env SIM_FACEBOOK_PAGE_TOKEN) for
  Facebook, the Instagram user's (SIM_INSTAGRAM_TOKEN) for Instagram, else error 190 (HTTP
  400). Any page or IG user id is accepted. Records keep the parameters, never the token.
- Messenger and Instagram messaging (graph.facebook.com), as Chatwoot's Facebook Page inbox calls
  them: `POST /v{n}/me/messages` (JSON, or a form with recipient[id] and message[text];
  messaging_type optional) -> `{"recipient_id", "message_id"}`, `GET /me` (the Page, with
  `instagram_business_account` SIM_INSTAGRAM_BUSINESS_ACCOUNT when set) and `GET /{id}` (a profile
  set by `POST /_sim/messenger {"profiles": {id: {...}}}`, else error 100/2018218), all with the
  Page's token as `access_token`; records have `service` messenger; a graph rule of platform
  messenger (`error`) answers that error.
- Anthropic Messages API (api.anthropic.com): `POST /v1/messages`, answering the forced
  `classify` tool call with scripted intent, confidence and reply, or a scripted error
  (429, 500, 529) or delay.
- An SMTP sink (aiosmtpd, port SIM_SMTP_PORT, 25 by default; no TLS) that takes any sender and
  recipient; with SIM_SMTP_USER/SIM_SMTP_PASSWORD set it requires AUTH PLAIN or LOGIN with them.

Control (tests and `make demo`): `GET /_sim/requests` (a Graph posting record has `service`
facebook or instagram, `object_id`, `edge`, `params`, `token`: valid, invalid or missing, and the
`status` and `answer` given), `POST /_sim/reset` (requests, rules, posts, containers, mail),
`POST /_sim/anthropic {"rules": [{"match": "refund", "intent": "billing", "confidence": 0.4}, ...]}`
(the first rule whose `match` is in the customer's message wins; also `error`, `delay`, `stop_reason`,
and `times`: the rule applies to that many requests, then goes),
`POST /_sim/whatsapp {"token": "..."}` (the access token it accepts),
`POST /_sim/graph {"rules": [{"platform": "facebook", "error": 190}, {"platform": "instagram", "status": 500},
{"platform": "instagram", "container_status": "ERROR", "polls": 3}]}` (`error`: that Graph error,
HTTP 400; `status`: a 5xx with Graph's code 2; `container_status`, `polls`: the final status of
new containers and how many IN_PROGRESS polls come first; optional `edge` (feed, photos, media,
media_publish, status), `match` (in the message or caption) and `times` narrow a rule),
`GET /_sim/graph` (rules, posts, containers), `GET /_sim/mail` (the messages received:
from, to, subject, body (text/plain), html, login, received_at).

Environment: SIM_BIND (0.0.0.0), SIM_PORT (8090), SIM_SMTP_PORT (25), and the credentials
SIM_WHATSAPP_TOKEN, SIM_FACEBOOK_PAGE_TOKEN, SIM_INSTAGRAM_TOKEN, SIM_SMTP_USER, SIM_SMTP_PASSWORD.
Without aiosmtpd importable (tools/sandbox.py mounts it) the HTTP part runs alone.

It proves the platform's requests match the vendors' contracts as this file states them;
never the vendors' own behaviour (rate limits, template rules, review of posts, image
fetching, Claude's judgement, mail delivery).
"""

import email
import email.policy
import itertools
import json
import logging
import os
import re
import threading
import time
import uuid
import warnings
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    "facebook_token": os.environ.get("SIM_FACEBOOK_PAGE_TOKEN", ""),
    "instagram_token": os.environ.get("SIM_INSTAGRAM_TOKEN", ""),
}
DEFAULT_CLASSIFICATION = {
    "intent": "general",
    "confidence": 0.95,
    "reply": "Thanks for your message! A member of our team will follow up shortly.",
    "summary": "General enquiry.",
}
ANTHROPIC_ERRORS = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
GRAPH_EDGES = {
    "feed": "facebook",
    "photos": "facebook",
    "media": "instagram",
    "media_publish": "instagram",
    None: "instagram",
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
IDS = itertools.count(17900000000000001)  # Graph's ids: long decimal strings


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


def graph_route(method, path):
    """(platform, object id, edge) of a Graph posting request, or None."""
    match = re.fullmatch(r"/v[0-9.]+/([^/]+)(?:/(feed|photos|media|media_publish))?", path)
    if match and (method == "POST") == bool(match[2]):
        return GRAPH_EDGES[match[2]], match[1], match[2] or "status"


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

    def _handle(self, method):
        path, _, query = self.path.partition("?")
        body = self._body() if method == "POST" else {}
        if path.startswith("/_sim/"):
            return self._answer(*self._control(method, path, body))
        if re.fullmatch(r"(/v[0-9.]+)?/me(/messages)?|/[0-9]+", path):
            return self._answer(*self._messenger(method, path, query, body))
        route = None if path.startswith("/v1/") else graph_route(method, path)
        if route:
            return self._graph_request(method, path, query, body, *route)
        service = "anthropic" if path.startswith("/v1/") else "whatsapp"
        record = {
            "service": service,
            "method": method,
            "path": path,
            "query": query,
            "body": body,
            "at": time.time(),
            "headers": {
                k.lower(): v
                for k, v in self.headers.items()
                if k.lower() in ("authorization", "x-api-key", "anthropic-version", "content-type")
            },
        }
        with LOCK:
            STATE["requests"].append(record)
        status, answer = self._anthropic(body) if service == "anthropic" else self._whatsapp(method, path, query, body)
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
                for key in ("requests", "posts", "mail", "profiles"):
                    STATE[key].clear()
                STATE["containers"].clear()
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
            if (
                body.get("messaging_product") != "whatsapp"
                or not body.get("to")
                or body.get("type") not in ("text", "template", "image")
            ):
                return graph_error(100, "(#100) Invalid parameter")
            if body["type"] == "text" and not (body.get("text") or {}).get("body"):
                return graph_error(100, "(#100) The parameter text['body'] is required.")
            return 200, {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": f"wamid.SIM{uuid.uuid4().hex.upper()}"}],
            }
        return graph_error(100, f"Unsupported {method} request to {path}", 400)

    def _messenger(self, method, path, query, body):
        """Messenger's Send API (`POST /v{n}/me/messages`), the Page itself (`GET /me`, no Instagram account linked)
        and a sender's profile (`GET /{psid}`: error 100/2018218, as for a user whose profile the Page may not read)."""
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        token = params.pop("access_token", "")
        record = {
            "service": "messenger",
            "method": method,
            "path": path,
            "params": params,
            "body": body,
            "at": time.time(),
            "token": "valid" if token and token == STATE["facebook_token"] else "invalid" if token else "missing",
        }
        with LOCK:
            STATE["requests"].append(record)
            rule = next((r for r in STATE["graph_rules"] if r.get("platform") == "messenger"), None)
        if record["token"] != "valid":
            return graph_error(190, "Invalid OAuth access token - Cannot parse access token")
        if rule:
            return graph_error(int(rule.get("error", 2)), GRAPH_ERRORS.get(int(rule.get("error", 2)), "Scripted error"))
        if path.endswith("/messages") and method == "POST":
            if "recipient[id]" in body:  # form-encoded, as Chatwoot's Instagram send posts it
                body = {"recipient": {"id": body["recipient[id]"]}, "message": {"text": body.get("message[text]")}}
                record["body"] = body
            recipient, text = (body.get("recipient") or {}).get("id"), (body.get("message") or {}).get("text")
            if (
                not recipient
                or not text
                or body.get("messaging_type", "RESPONSE") not in ("RESPONSE", "UPDATE", "MESSAGE_TAG")
            ):
                return graph_error(100, "(#100) Invalid parameter")
            return 200, {"recipient_id": recipient, "message_id": f"m_SIM{uuid.uuid4().hex}"}
        if path.endswith("/me") and method == "GET":
            linked = os.environ.get("SIM_INSTAGRAM_BUSINESS_ACCOUNT")
            return 200, {"id": "page", **({"instagram_business_account": {"id": linked}} if linked else {})}
        if method == "GET" and path.strip("/") in STATE["profiles"]:
            return 200, STATE["profiles"][path.strip("/")]
        if method == "GET":
            return graph_error(100, "(#100) No profile available for this user.", error_subcode=2018218)
        return graph_error(100, f"Unsupported {method} request to {path}")

    def _graph_request(self, method, path, query, body, platform, object_id, edge):
        """Graph's posting endpoints: parameters from the query, a form or JSON; recorded without the token."""
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        params.update(
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in (body if isinstance(body, dict) else {}).items()}
        )
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip() or params.get(
            "access_token", ""
        )
        params.pop("access_token", None)
        record = {
            "service": platform,
            "method": method,
            "path": path,
            "object_id": object_id,
            "edge": edge,
            "params": params,
            "token": "valid" if token and token == STATE[f"{platform}_token"] else "invalid" if token else "missing",
            "at": time.time(),
            "headers": {"content-type": self.headers.get("Content-Type")},
        }
        with LOCK:
            STATE["requests"].append(record)
            status, answer = self._graph(platform, object_id, edge, params, record["token"] == "valid")
            record.update(status=status, answer=answer)
        self._answer(status, answer)

    def _graph(self, platform, object_id, edge, params, token_ok):
        if not token_ok:
            return graph_error(190, "Invalid OAuth access token - Cannot parse access token")
        text = params.get("message") or params.get("caption") or ""
        rule = next(
            (
                r
                for r in STATE["graph_rules"]
                if r.get("platform") == platform
                and r.get("edge", edge) == edge
                and r.get("match", "") in text
                and ("error" in r or "status" in r)
            ),
            None,
        )
        if rule and "times" in rule:
            rule["times"] -= 1
            STATE["graph_rules"] = [r for r in STATE["graph_rules"] if r.get("times", 1) > 0]
        if rule and rule.get("status"):
            return graph_error(
                2,
                "An unexpected error has occurred. Please retry your request later.",
                int(rule["status"]),
                is_transient=True,
            )
        if rule:
            return graph_error(
                int(rule["error"]), GRAPH_ERRORS.get(int(rule["error"]), f"(#{rule['error']}) Scripted error")
            )
        post = {"platform": platform, "object_id": object_id, "edge": edge, "at": time.time(), **params}
        return (self._facebook if platform == "facebook" else self._instagram)(object_id, edge, params, text, post)

    def _facebook(self, page_id, edge, params, text, post):
        if edge == "feed" and not (params.get("message") or params.get("link")):
            return graph_error(100, "(#100) The parameter message or link is required")
        if edge == "photos" and not params.get("url"):
            return graph_error(324, "(#324) Requires upload file")
        post["post_id"] = f"{page_id}_{next(IDS)}"
        post["id"] = str(next(IDS)) if edge == "photos" else post["post_id"]
        STATE["posts"].append(post)
        return 200, {"id": post["id"], "post_id": post["post_id"]} if edge == "photos" else {"id": post["id"]}

    def _instagram(self, object_id, edge, params, text, post):
        if edge == "media":
            if not params.get("image_url"):
                return graph_error(100, "(#100) The parameter image_url is required.")
            shape = next(
                (
                    r
                    for r in STATE["graph_rules"]
                    if r.get("platform") == "instagram"
                    and r.get("match", "") in text
                    and ("container_status" in r or "polls" in r)
                ),
                {},
            )
            container = {
                "id": str(next(IDS)),
                "ig_user_id": object_id,
                "image_url": params["image_url"],
                "caption": params.get("caption", ""),
                "polls": int(shape.get("polls", 1)),
                "status": shape.get("container_status", "FINISHED"),
            }
            STATE["containers"][container["id"]] = container
            return 200, {"id": container["id"]}
        container = STATE["containers"].get(object_id if edge == "status" else params.get("creation_id", ""))
        if edge == "status" and not container:
            return graph_error(
                100,
                f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be loaded due to "
                "missing permissions, or does not support this operation",
                error_subcode=33,
            )
        if edge == "status":
            container["polls"] -= 1
            return 200, {
                "status_code": "IN_PROGRESS" if container["polls"] >= 0 else container["status"],
                "id": object_id,
            }
        if not container or container["ig_user_id"] != object_id:
            return graph_error(100, "(#100) Param creation_id must be a valid media container id")
        if container["polls"] > 0 or container["status"] != "FINISHED":
            return graph_error(
                9007,
                "Media ID is not available",
                error_subcode=2207027,
                error_user_msg="The media is not ready for publishing, please wait for a moment",
            )
        container["status"], post["id"] = "PUBLISHED", str(next(IDS))
        STATE["posts"].append({**post, "image_url": container["image_url"], "caption": container["caption"]})
        return 200, {"id": post["id"]}

    def _anthropic(self, body):
        if not self.headers.get("x-api-key") or not self.headers.get("anthropic-version"):
            return 401, {
                "type": "error",
                "error": {"type": "authentication_error", "message": "x-api-key and anthropic-version are required"},
            }
        if not body.get("model") or not isinstance(body.get("max_tokens"), int) or not body.get("messages"):
            return 400, {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "model, max_tokens and messages are required"},
            }
        text = json.dumps(body["messages"][-1].get("content"))
        with LOCK:
            rule = next((r for r in STATE["rules"] if r.get("match", "") in text), {})
            if "times" in rule:  # a rule for the first `times` requests only
                rule["times"] -= 1
                STATE["rules"] = [r for r in STATE["rules"] if r.get("times", 1) > 0]
        time.sleep(float(rule.get("delay", 0)))
        if rule.get("error"):
            status = int(rule["error"])
            return status, {
                "type": "error",
                "error": {"type": ANTHROPIC_ERRORS.get(status, "api_error"), "message": "scripted failure"},
            }
        tool = (body.get("tool_choice") or {}).get("name") or next((t["name"] for t in body.get("tools", [])), None)
        result = {k: rule.get(k, v) for k, v in DEFAULT_CLASSIFICATION.items()}
        content = (
            [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": tool, "input": result}]
            if tool
            else [{"type": "text", "text": result["reply"]}]
        )
        return 200, {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": rule.get("stop_reason") or ("tool_use" if tool else "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": len(text) // 4, "output_tokens": 40},
        }


class MailSink:
    """aiosmtpd's handler: keeps every message, its text/plain part decoded."""

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        plain, html = (message.get_body(preferencelist=(kind,)) for kind in ("plain", "html"))
        with LOCK:
            STATE["mail"].append(
                {
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "subject": str(message["subject"] or ""),
                    "body": plain.get_content().replace("\r\n", "\n") if plain is not None else None,
                    "html": html.get_content().replace("\r\n", "\n") if html is not None else None,
                    "login": getattr(session.auth_data, "login", b"").decode(errors="replace") or None,
                    "received_at": datetime.now(UTC).isoformat(),
                }
            )
        return "250 OK: queued"


def start_smtp(bind, port):
    """The SMTP sink on its own asyncio loop in a thread (aiosmtpd's Controller)."""
    try:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult
    except ImportError:
        print("[vendors SIMULATOR] aiosmtpd is not importable: no SMTP sink", flush=True)
        return
    user, password = os.environ.get("SIM_SMTP_USER", ""), os.environ.get("SIM_SMTP_PASSWORD", "")
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # no TLS, on purpose: a sandbox sink
    warnings.filterwarnings("ignore", module="aiosmtpd")

    def authenticate(server, session, envelope, mechanism, data):
        ok = not (user or password) or (
            data.login.decode(errors="replace"),
            data.password.decode(errors="replace"),
        ) == (user, password)
        return AuthResult(success=ok, handled=False, auth_data=data)

    Controller(
        MailSink(),
        hostname=bind,
        port=port,
        authenticator=authenticate,
        auth_required=bool(user or password),
        auth_require_tls=False,
    ).start()
    print(f"[vendors SIMULATOR] SMTP on {bind}:{port}" + (" (AUTH required)" if user or password else ""), flush=True)


if __name__ == "__main__":
    bind, port = os.environ.get("SIM_BIND", "0.0.0.0"), int(os.environ.get("SIM_PORT", "8090"))
    start_smtp(bind, int(os.environ.get("SIM_SMTP_PORT", "25")))
    print(f"[vendors SIMULATOR] listening on {bind}:{port}", flush=True)
    ThreadingHTTPServer((bind, port), Handler).serve_forever()
