"""The Chatwoot stand-in's outbound HTTP (see chatwoot_api.py): JSON requests, background jobs, and SafeFetch's
refusal of private addresses (lib/safe_fetch.rb)."""

import ipaddress
import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request

from cw_store import ENV


def http(method, url, body=None, headers=None, timeout=10):
    """(status, parsed JSON) of a request; status 0 when it did not get an answer."""
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Accept": "application/json", **({"Content-Type": "application/json"} if data else {}), **(headers or {})}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, method=method, headers=hdrs), timeout=timeout
        ) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (OSError, ValueError) as e:
        return 0, {"error": {"message": str(e)}}
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, {"raw": raw.decode(errors="replace")}


def in_background(fn, *args):
    threading.Thread(target=fn, args=args, daemon=True).start()


def private_network_allowed():  # lib/safe_fetch.rb: SafeFetch.allow_private_network?
    return ENV.get("SAFE_FETCH_ALLOW_PRIVATE_NETWORK", "").strip().lower() in ("true", "1", "t", "yes", "y", "on")


def unsafe_url(url):
    """lib/safe_fetch.rb with the ssrf_filter gem: a host that resolves to no public address is refused."""
    if private_network_allowed():
        return None
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return f"Hostname '{host}' could not be resolved"
    if not any(ipaddress.ip_address(a).is_global for a in addresses):
        return f"Hostname '{host}' has no public ip addresses"
    return None
