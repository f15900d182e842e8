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
- Meta's webhook deliveries to the platform (sim_meta.py): signed like Meta, delivered again like
  Meta when not answered 2xx in time, in compressed time.
- An S3-compatible object store on port 443 (TLS), moto's, when SIM_S3_CERT, SIM_S3_KEY (the
  certificate and its key, files) and SIM_S3_BUCKETS (names, space-separated) are set (sim_s3.py).
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
from, to, subject, body (text/plain), html, login, received_at), `POST /_sim/meta/deliver` and
`GET /_sim/meta/deliveries` (see sim_meta.py).

Environment: SIM_BIND (0.0.0.0), SIM_PORT (8090), SIM_SMTP_PORT (25), and the credentials
SIM_WHATSAPP_TOKEN, SIM_META_APP_SECRET, SIM_FACEBOOK_PAGE_TOKEN, SIM_INSTAGRAM_TOKEN, SIM_SMTP_USER, SIM_SMTP_PASSWORD.
Without aiosmtpd importable (tools/sandbox.py mounts it) the HTTP part runs alone.

This file is the entry point (run by path, so its siblings import): each vendor's part is a
module beside it (sim_whatsapp.py, sim_messenger.py, sim_graph.py, sim_anthropic.py, sim_smtp.py),
sharing sim_core.py's state, JSON plumbing and control endpoints; Handler here routes among them.

It proves the platform's requests match the vendors' contracts as this file states them;
never the vendors' own behaviour (rate limits, template rules, review of posts, image
fetching, Claude's judgement, mail delivery).
"""

import os
import re
import time
from http.server import ThreadingHTTPServer

from sim_anthropic import AnthropicHandler
from sim_core import LOCK, STATE
from sim_graph import GraphHandler, graph_route
from sim_messenger import MessengerHandler
from sim_smtp import start_smtp
from sim_whatsapp import WhatsAppHandler


class Handler(GraphHandler, MessengerHandler, WhatsAppHandler, AnthropicHandler):
    """Routes each request to its vendor's part (one module each, sharing sim_core's state)."""

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


if __name__ == "__main__":
    bind, port = os.environ.get("SIM_BIND", "0.0.0.0"), int(os.environ.get("SIM_PORT", "8090"))
    start_smtp(bind, int(os.environ.get("SIM_SMTP_PORT", "25")))
    if os.environ.get("SIM_S3_CERT"):
        from sim_s3 import start_s3

        start_s3(bind, 443, os.environ["SIM_S3_CERT"], os.environ["SIM_S3_KEY"], os.environ["SIM_S3_BUCKETS"].split())
    print(f"[vendors SIMULATOR] listening on {bind}:{port}", flush=True)
    ThreadingHTTPServer((bind, port), Handler).serve_forever()
