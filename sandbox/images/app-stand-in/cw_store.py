"""The Chatwoot stand-in's shared state and storage (see chatwoot_api.py): the environment, the database
parameters and log function stand_in.py configures, and one table (cw_objects) of JSON documents, every
change under one lock."""

import json
import os
import secrets
import threading
import time

import psycopg2

ENV = os.environ
_db_params, _logger, _schema_ready = None, print, False
# As Rails' connection pools (config/database.yml: RAILS_MAX_THREADS for each Puma worker,
# SIDEKIQ_CONCURRENCY for Sidekiq): this one process answers the API and runs the jobs, so it
# holds at most what Chatwoot's web and Sidekiq processes would together; a request or job
# past that waits for a connection.
_pool = threading.BoundedSemaphore(
    max(1, int(ENV.get("WEB_CONCURRENCY") or 1)) * int(ENV.get("RAILS_MAX_THREADS") or 5)
    + int(ENV.get("SIDEKIQ_CONCURRENCY") or 10)
)


def configure(db_params, log):
    global _db_params, _logger
    _db_params, _logger = db_params, log


def _log(msg):  # the log function configure() was given (print until then): other modules import this name
    _logger(msg)


# ---- storage: one table, one JSON document per object, ids per kind; every change under one lock ----


class Store:
    def __init__(self, cur):
        self.cur = cur

    def get(self, kind, id_, account_id=None):
        self.cur.execute("select data from cw_objects where kind = %s and id = %s", (kind, id_))
        row = self.cur.fetchone()
        return row[0] if row and (account_id is None or row[0].get("account_id") == account_id) else None

    def find(self, kind, **match):
        self.cur.execute(
            "select data from cw_objects where kind = %s and data @> %s::jsonb order by id", (kind, json.dumps(match))
        )
        return [row[0] for row in self.cur.fetchall()]

    def add(self, kind, **data):
        self.cur.execute("select coalesce(max(id), 0) + 1 from cw_objects where kind = %s", (kind,))
        data = {"id": self.cur.fetchone()[0], **data, "created_at": time.time(), "updated_at": time.time()}
        self.cur.execute(
            "insert into cw_objects (kind, id, data) values (%s, %s, %s)", (kind, data["id"], json.dumps(data))
        )
        return data

    def save(self, kind, obj):
        obj["updated_at"] = time.time()
        self.cur.execute(
            "update cw_objects set data = %s where kind = %s and id = %s", (json.dumps(obj), kind, obj["id"])
        )

    def delete(self, kind, id_):
        self.cur.execute("delete from cw_objects where kind = %s and id = %s", (kind, id_))


class transaction:
    """One database transaction. A change holds the stand-in's lock, so changes from all threads are
    serialised; a read (`read_only`) takes no lock and sees one snapshot (repeatable read), as Rails'
    GETs read beside its writes. Connections are kept, as Rails' pool keeps them."""

    def __init__(self, read_only=False):
        self.read_only = read_only

    def __enter__(self):
        _pool.acquire()
        try:
            self.conn = _checkout()
            try:
                store = self._begin()
            except (psycopg2.OperationalError, psycopg2.InterfaceError):  # a kept connection the server closed
                self.conn.close()
                self.conn = psycopg2.connect(connect_timeout=5, **_db_params())
                store = self._begin()
        except BaseException:
            self.__exit__(True)
            raise
        return store

    def _begin(self):
        global _schema_ready
        cur = self.conn.cursor()
        if self.read_only and _schema_ready:
            cur.execute("set transaction isolation level repeatable read, read only")
            return Store(cur)
        cur.execute("select pg_advisory_xact_lock(7470001)")
        if not _schema_ready:
            cur.execute(
                "create table if not exists cw_objects (kind text not null, id integer not null, "
                "data jsonb not null, primary key (kind, id))"
            )
            # Chatwoot's tables are indexed on the columns it looks up by (conversation_id, contact_id...);
            # without this every lookup reads the whole table and the stand-in slows down as the tests add data.
            cur.execute("create index if not exists cw_objects_data on cw_objects using gin (data jsonb_path_ops)")
            _schema_ready = True
        return Store(cur)

    def __exit__(self, exc_type, *_):
        conn, self.conn = getattr(self, "conn", None), None
        try:
            if conn is not None:
                try:
                    (conn.rollback if exc_type else conn.commit)()
                except (psycopg2.OperationalError, psycopg2.InterfaceError):
                    conn.close()
                    if not exc_type:
                        raise
                _checkin(conn)
        finally:
            _pool.release()


_idle: list = []  # connections kept for the next transaction
_idle_lock = threading.Lock()


def _checkout():
    with _idle_lock:
        while _idle:
            conn = _idle.pop()
            if not conn.closed:
                return conn
    return psycopg2.connect(connect_timeout=5, **_db_params())


def _checkin(conn):
    if conn.closed:
        return
    with _idle_lock:
        _idle.append(conn)


def ensure_schema():
    with transaction():
        pass


def new_token():  # has_secure_token: 24 characters of base58
    return "".join(secrets.choice("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz") for _ in range(24))
