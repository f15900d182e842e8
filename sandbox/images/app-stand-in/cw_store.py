"""The Chatwoot stand-in's shared state and storage (see chatwoot_api.py): the environment, the database
parameters and log function stand_in.py configures, and one table (cw_objects) of JSON documents, every
change under one lock."""

import json
import os
import secrets
import time

import psycopg2

ENV = os.environ
_db_params, _logger, _schema_ready = None, print, False


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
    """One database transaction holding the stand-in's lock (so requests from all threads are serialised)."""

    def __enter__(self):
        global _schema_ready
        self.conn = psycopg2.connect(connect_timeout=5, **_db_params())
        cur = self.conn.cursor()
        cur.execute("select pg_advisory_xact_lock(7470001)")
        if not _schema_ready:
            cur.execute(
                "create table if not exists cw_objects (kind text not null, id integer not null, "
                "data jsonb not null, primary key (kind, id))"
            )
            _schema_ready = True
        return Store(cur)

    def __exit__(self, exc_type, *_):
        (self.conn.rollback if exc_type else self.conn.commit)()
        self.conn.close()


def ensure_schema():
    with transaction():
        pass


def new_token():  # has_secure_token: 24 characters of base58
    return "".join(secrets.choice("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz") for _ in range(24))
