"""The vendors' SIMULATOR's Meta webhook sender (see vendors.py): WhatsApp notifications delivered to the
platform's webhook as Meta delivers them, and delivered again as Meta does.

- Each POST carries the raw JSON body and `X-Hub-Signature-256: sha256=HMAC(app secret, raw body)`
  (SIM_META_APP_SECRET), over HTTPS to the host's edge with the webhook's host name (SNI and Host).
- An answer other than 2xx, a refused connection or no answer within `timeout` seconds is a failure:
  the notification is delivered again after a pause that doubles each time (`first_pause`, capped at
  `max_pause`) until `window` seconds have passed since the first try. Meta does the same over hours
  and days (up to 7 days, at-least-once, the same notification possibly more than once); the
  simulator compresses that into seconds.
- The edge's certificate is not verified here (the simulator has no copy of the sandbox's ACME
  root); the tests' own direct deliveries verify it.

Control: `POST /_sim/meta/deliver {"address", "host", "path", "payloads": [...], "timeout": 20,
"first_pause": 1, "max_pause": 15, "window": 600}` starts one delivery per payload, in the
background, and answers their ids; `GET /_sim/meta/deliveries` lists every delivery with its
attempts (`at`, `status` (0: no answer), `seconds`) and whether it was `delivered`.
"""

import hashlib
import hmac
import http.client
import json
import os
import socket
import ssl
import threading
import time
import uuid

from sim_core import LOCK, STATE


def start_deliveries(spec):
    ids = []
    for payload in spec["payloads"]:
        delivery = {"id": uuid.uuid4().hex, "payload": payload, "attempts": [], "delivered": False, "done": False}
        with LOCK:
            STATE["deliveries"][delivery["id"]] = delivery
        threading.Thread(target=_deliver, args=(spec, delivery), daemon=True).start()
        ids.append(delivery["id"])
    return ids


def _deliver(spec, delivery):
    raw = json.dumps(delivery["payload"]).encode()
    secret = os.environ.get("SIM_META_APP_SECRET", "").encode()
    headers = {
        "Host": spec["host"],
        "Content-Type": "application/json",
        "User-Agent": "facebookexternalua",
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest(),
    }
    start, pause = time.time(), float(spec.get("first_pause", 1))
    while True:
        began = time.time()
        status = _post(spec, raw, headers)
        with LOCK:
            delivery["attempts"].append({"at": began, "status": status, "seconds": round(time.time() - began, 2)})
        if 200 <= status < 300:
            delivery["delivered"] = True
            break
        if time.time() + pause - start > float(spec.get("window", 600)):
            break
        time.sleep(pause)
        pause = min(pause * 2, float(spec.get("max_pause", 15)))
    delivery["done"] = True


def _post(spec, raw, headers):
    """The answer's status, or 0 for no answer in time (refused, reset, timed out)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((spec["address"], 443), timeout=float(spec.get("timeout", 20))) as sock:
            with context.wrap_socket(sock, server_hostname=spec["host"]) as tls:
                connection = http.client.HTTPSConnection(spec["host"], timeout=float(spec.get("timeout", 20)))
                connection.sock = tls
                connection.request("POST", spec.get("path", "/webhook/whatsapp"), body=raw, headers=headers)
                answer = connection.getresponse()
                answer.read()
                return answer.status
    except (OSError, http.client.HTTPException):
        return 0
