"""STAND-IN for an S3-compatible object store (AWS S3, MinIO, ...): moto's S3 (Debian's
python3-moto 5.1.1, in the simulator's image) served over TLS with a certificate of the
sandbox CA, for pgBackRest's repository in a bucket (pitr_repo_s3_*). What it follows, and
what it does not prove, is in S3_CONTRACT.md beside this file.

Two departures from moto's own server (moto/server.py, werkzeug's run_simple), both in
how connections end, not in the S3 API:
- werkzeug answers every request with `Connection: close` and then drops the TCP connection
  without TLS's close_notify. pgBackRest 2.45 reads a body announced by neither length nor
  chunking up to the end of the connection, and takes an end without close_notify as an
  error unless the body is XML or JSON (src/common/io/http/response.c,
  httpResponseReadIgnoreUnexpectedEof): each PUT failed. Here each connection ends with
  close_notify, as a TLS server should (RFC 8446, 6.1).
- The buckets named in SIM_S3_BUCKETS exist from the start, as an operator creates theirs.
"""

import logging
import ssl
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import ThreadedWSGIServer
from werkzeug.test import Client


class _ClosingServer(ThreadedWSGIServer):
    def shutdown_request(self, request):
        try:
            request.settimeout(5)
            request.unwrap()  # close_notify
        except (OSError, ValueError, AttributeError):
            pass
        super().shutdown_request(request)


def start_s3(bind, port, cert, key, buckets):
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request in the simulator's log
    app = DomainDispatcherApplication(create_backend_app)
    for bucket in buckets:
        Client(app).put(f"/{bucket}", headers={"Host": "s3.amazonaws.com"})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _ClosingServer(bind, port, app, ssl_context=context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"[vendors SIMULATOR] S3 stand-in on {bind}:{port}, buckets {', '.join(buckets)}", flush=True)
