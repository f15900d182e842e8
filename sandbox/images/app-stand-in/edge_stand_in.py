"""STAND-IN for Traefik and Pangolin in the sandbox (their images cannot be fetched here).

It proves the edge's wiring, never Traefik's or Pangolin's behaviour: Traefik's stand-in
reads the static and dynamic configuration the deploy rendered, listens on the entry
points it names (plain HTTP: no TLS, no ACME), redirects HTTP to HTTPS, answers /ping,
and forwards each request by its Host header to the service the routers name, over the
edge network. Pangolin's stand-in refuses to start without the config.yml keys Pangolin
needs and answers its health path.
"""

import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

PANGOLIN_REQUIRED = {
    "app": ("dashboard_url",),
    "domains": (),
    "server": ("secret",),
    "gerbil": ("base_endpoint",),
    "flags": ("disable_signup_without_invite",),
}


def log(msg):
    print(f"[edge stand-in] {msg}", flush=True)


def option(argv, name, default):
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return default


def host_rule(rule):
    """`Host(`a`)` (optionally `&& ...`) -> a."""
    start = rule.index("Host(`") + len("Host(`")
    return rule[start : rule.index("`", start)]


def serve(port, handler):
    server = ThreadingHTTPServer(("0.0.0.0", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log(f"listening on :{port}")


def traefik(argv):
    static = yaml.safe_load(open(option(argv, "configFile", "/etc/traefik/traefik.yml")))
    dynamic = yaml.safe_load(open(static["providers"]["file"]["filename"]))
    routes = {}
    for router in dynamic["http"]["routers"].values():
        service = dynamic["http"]["services"].get(router["service"])
        if service and "websecure" in router.get("entryPoints", []):
            routes.setdefault(host_rule(router["rule"]), service["loadBalancer"]["servers"][0]["url"])
    log(f"routes: {routes}")
    ping_point = static.get("ping", {}).get("entryPoint")

    class Handler(BaseHTTPRequestHandler):
        point = None

        def do_GET(self):
            if self.point == ping_point and self.path == "/ping":
                return self.reply(200, b"OK")
            if self.point == "web" and not self.path.startswith("/.well-known/acme-challenge/"):
                self.send_response(308)
                self.send_header("Location", f"https://{self.headers.get('Host', '')}{self.path}")
                self.end_headers()
                return
            upstream = routes.get((self.headers.get("Host") or "").split(":")[0])
            if not upstream:
                return self.reply(404, b"404 page not found")
            try:
                with urllib.request.urlopen(upstream + self.path, timeout=10) as response:
                    return self.reply(response.status, response.read())
            except urllib.error.HTTPError as e:
                return self.reply(e.code, e.read())
            except OSError as e:
                return self.reply(502, f"Bad Gateway: {e}".encode())

        def reply(self, status, body):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    for name, point in static["entryPoints"].items():
        serve(int(point["address"].rsplit(":", 1)[1]), type(f"Handler_{name}", (Handler,), {"point": name}))
    threading.Event().wait()


def healthcheck(argv):
    static = yaml.safe_load(open(option(argv, "configFile", "/etc/traefik/traefik.yml")))
    port = static["entryPoints"][static["ping"]["entryPoint"]]["address"].rsplit(":", 1)[1]
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=3)
    except OSError:
        sys.exit(1)


def pangolin():
    config = yaml.safe_load(open("/app/config/config.yml"))
    missing = [
        f"{section}.{key}" if key else section
        for section, keys in PANGOLIN_REQUIRED.items()
        for key in (keys or ("",))
        if section not in config or (key and key not in config[section])
    ]
    if missing:
        sys.exit(f"config.yml lacks {missing}")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"data":"stand-in pangolin"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    for port in (3000, 3001, 3002):
        serve(port, Handler)
    threading.Event().wait()


def main(app, argv):
    log(f"{app} started with command {argv!r}")
    if app == "traefik" and argv[:1] == ["healthcheck"]:
        healthcheck(argv)
    elif app == "traefik":
        traefik(argv)
    else:
        pangolin()
