"""STAND-IN for Chatwoot, n8n and Directus (and, in edge_stand_in.py, Traefik and Pangolin) in the sandbox
(their images cannot be fetched here).

It proves the deploy's wiring, never the app's behaviour: it starts with the command the
compose file gives the real image, reads the real app's environment variables, really
connects to PostgreSQL and Redis with them, listens on the app's port and answers the
app's health path (healthy only while its database and Redis answer), and records what
it was started with (names of variables, never values) in its log.
For Chatwoot it also serves the documented API subset the platform uses and runs its
headless bootstrap (`bundle exec rails runner`): see chatwoot_api.py, itself a stand-in.
"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import chatwoot_api
import psycopg2
import redis

APP = os.environ["STAND_IN_APP"]
VERSION = os.environ.get("STAND_IN_VERSION", "stand-in")
ENV = os.environ
# The command without the `bundle exec` prefix (the image's `bundle` shim passes it on too).
COMMAND = sys.argv[1:][2:] if sys.argv[1:3] == ["bundle", "exec"] else sys.argv[1:]
RUNNER = COMMAND[:2] == ["rails", "runner"]


def log(msg):
    # `rails runner` answers on stdout, so a runner logs to stderr.
    print(f"[{APP} stand-in] {msg}", file=sys.stderr if RUNNER else sys.stdout, flush=True)


def db_params():
    if APP == "chatwoot":
        return dict(
            host=ENV["POSTGRES_HOST"],
            port=int(ENV.get("POSTGRES_PORT", 5432)),
            user=ENV["POSTGRES_USERNAME"],
            password=ENV["POSTGRES_PASSWORD"],
            dbname=ENV["POSTGRES_DATABASE"],
        )
    if APP == "n8n":
        return dict(
            host=ENV["DB_POSTGRESDB_HOST"],
            port=int(ENV.get("DB_POSTGRESDB_PORT", 5432)),
            user=ENV["DB_POSTGRESDB_USER"],
            password=ENV["DB_POSTGRESDB_PASSWORD"],
            dbname=ENV["DB_POSTGRESDB_DATABASE"],
        )
    return dict(
        host=ENV["DB_HOST"],
        port=int(ENV.get("DB_PORT", 5432)),
        user=ENV["DB_USER"],
        password=ENV["DB_PASSWORD"],
        dbname=ENV["DB_DATABASE"],
    )


def redis_client():
    if APP == "chatwoot":
        url = urlparse(ENV["REDIS_URL"])
        return redis.Redis(
            host=url.hostname,
            port=url.port or 6379,
            db=int(url.path.lstrip("/") or 0),
            password=ENV.get("REDIS_PASSWORD"),
            socket_timeout=3,
        )
    if APP == "n8n":
        return redis.Redis(
            host=ENV["QUEUE_BULL_REDIS_HOST"],
            port=int(ENV.get("QUEUE_BULL_REDIS_PORT", 6379)),
            db=int(ENV.get("QUEUE_BULL_REDIS_DB", 0)),
            password=ENV.get("QUEUE_BULL_REDIS_PASSWORD"),
            socket_timeout=3,
        )
    return redis.Redis(
        host=ENV["REDIS_HOST"],
        port=int(ENV.get("REDIS_PORT", 6379)),
        db=int(ENV.get("REDIS_DB", 0)),
        password=ENV.get("REDIS_PASSWORD"),
        socket_timeout=3,
    )


def check():
    """(database ok, redis ok) right now."""
    db_ok = redis_ok = False
    try:
        with psycopg2.connect(connect_timeout=3, **db_params()) as conn, conn.cursor() as cur:
            cur.execute("select 1")
            db_ok = True
    except psycopg2.Error as e:
        log(f"database check failed: {e}".strip())
    try:
        redis_ok = redis_client().ping()
    except redis.RedisError as e:
        log(f"redis check failed: {e}")
    return db_ok, redis_ok


def migrate(label):
    """What the real app's migrations leave behind: a table in its own database, one row per run."""
    with psycopg2.connect(connect_timeout=5, **db_params()) as conn, conn.cursor() as cur:
        cur.execute("create table if not exists stand_in_migrations (version text, ran_at timestamptz default now())")
        cur.execute("insert into stand_in_migrations (version) values (%s)", (f"{label} {VERSION}",))
    if APP == "chatwoot":
        chatwoot_api.ensure_schema()


chatwoot_api.configure(db_params, log)


def wait_for_services(timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(check()):
            return True
        time.sleep(2)
    return False


HEALTH = {
    "chatwoot": (3000, "/api"),
    "n8n": (5678, "/healthz/readiness"),
    "directus": (8055, "/server/health"),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        port, health_path = HEALTH[APP]
        path = self.path.split("?")[0]
        if APP == "chatwoot" and chatwoot_api.handles(path):
            return chatwoot_api.serve_request(self, "GET")
        if path == health_path or (APP == "n8n" and path == "/healthz"):
            db_ok, redis_ok = check()
            if APP == "chatwoot":
                status, body = (
                    200,
                    {
                        "version": VERSION,
                        "data_services": "ok" if db_ok else "failing",
                        "queue_services": "ok" if redis_ok else "failing",
                    },
                )
            else:
                ok = db_ok and redis_ok
                status, body = (200 if ok else 503), {"status": "ok" if ok else "error", "stand_in": True}
        else:
            status, body = 200, {"stand_in": APP, "version": VERSION, "path": path}
        data = json.dumps(body, separators=(",", ":")).encode()  # as Rails renders it
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def api(self, method):
        if APP == "chatwoot" and chatwoot_api.handles(self.path.split("?")[0]):
            return chatwoot_api.serve_request(self, method)
        self.send_error(501, f"Unsupported method ({method!r})")

    def do_POST(self):
        self.api("POST")

    def do_PATCH(self):
        self.api("PATCH")

    def do_PUT(self):
        self.api("PUT")

    def do_DELETE(self):
        self.api("DELETE")

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's default backlog (5) resets bursts of parallel requests


def serve():
    port, _ = HEALTH[APP]
    if not wait_for_services():
        log("database or redis unreachable; serving anyway, unhealthy")
    else:
        migrate("start")
    log(f"listening on :{port}")
    Server(("0.0.0.0", port), Handler).serve_forever()


def sidekiq():
    import setproctitle

    concurrency = ENV.get("SIDEKIQ_CONCURRENCY", "?")
    while True:
        db_ok, redis_ok = check()
        # What a booted Sidekiq shows in its process title; the compose healthcheck looks for it.
        setproctitle.setproctitle(
            f"sidekiq stand-in chatwoot [0 of {concurrency} busy]"
            if db_ok and redis_ok
            else "sidekiq stand-in chatwoot [waiting]"
        )
        time.sleep(5)


def main():
    argv = sys.argv[1:]
    if APP in ("traefik", "pangolin"):
        import edge_stand_in

        return edge_stand_in.main(APP, argv)
    log(f"started with command {argv!r}; environment names: {sorted(k for k in ENV if k.isupper())}")
    command = " ".join(argv)
    if APP == "chatwoot" and RUNNER:
        if "AccountBuilder" not in " ".join(COMMAND[2:]):
            sys.exit("rails runner: this stand-in runs only the AccountBuilder bootstrap")
        return chatwoot_api.bootstrap()
    if APP == "chatwoot" and "db:chatwoot_prepare" in command:
        if not wait_for_services():
            sys.exit("database or redis unreachable")
        if "broken" in VERSION:  # a release whose migration fails, for the failed-upgrade test
            sys.exit(f"db:chatwoot_prepare: a migration of {VERSION} failed (this stand-in version is built to fail)")
        migrate("prepare")
        log("db:chatwoot_prepare done")
        return
    if APP == "chatwoot" and "sidekiq" in command:
        sidekiq()
    serve()


if __name__ == "__main__":
    main()
