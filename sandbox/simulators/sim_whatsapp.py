"""The vendors' SIMULATOR's WhatsApp Cloud API (see vendors.py): the template check and message sends."""

import re
import uuid

from sim_core import STATE, SimHandler, graph_error


class WhatsAppHandler(SimHandler):
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
