"""The application bootstrap's HTTP helper (bin/apps_http.py): the apps' APIs, JSON in and out,
tried again while an app starts; an error's text with every secret's value replaced."""

import json
import time
import urllib.error
import urllib.request

from apps_common import redacted


def call(method, url, body=None, headers=None, ok=(200, 201, 204)):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    for attempt in range(30):
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                text = answer.read()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:500]
            if e.code in ok:
                return json.loads(detail) if detail else None
            if e.code >= 500 and attempt < 29:
                time.sleep(2)
                continue
            raise SystemExit(f"{method} {url.split('/', 3)[-1]}: HTTP {e.code}: {redacted(detail)}") from e
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if attempt == 29:
                raise
            time.sleep(2)
