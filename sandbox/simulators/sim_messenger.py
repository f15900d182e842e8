"""The vendors' SIMULATOR's Messenger and Instagram messaging (see vendors.py), as Chatwoot's
Facebook Page inbox calls them."""

import os
import time
import uuid
from urllib.parse import parse_qs

from sim_core import GRAPH_ERRORS, LOCK, STATE, SimHandler, graph_error


class MessengerHandler(SimHandler):
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
