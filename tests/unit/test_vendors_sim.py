"""The vendors' SIMULATOR (sandbox/simulators/vendors.py) keeps the Meta Graph posting and SMTP
contracts it states: run in a subprocess on free 127.0.0.1 ports."""

import json
import os
import secrets
import smtplib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest

SIMULATOR = Path(__file__).resolve().parents[2] / "sandbox" / "simulators" / "vendors.py"
TOKENS = {
    name: f"test-{secrets.token_hex(8)}"
    for name in ("SIM_FACEBOOK_PAGE_TOKEN", "SIM_INSTAGRAM_TOKEN", "SIM_SMTP_PASSWORD")
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sim():
    ports = {"SIM_PORT": free_port(), "SIM_SMTP_PORT": free_port()}
    env = {
        **os.environ,
        **TOKENS,
        **{k: str(v) for k, v in ports.items()},
        "SIM_BIND": "127.0.0.1",
        "SIM_SMTP_USER": "platform",
    }
    process = subprocess.Popen(
        [sys.executable, str(SIMULATOR)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{ports['SIM_PORT']}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/_sim/requests", timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield base, ports["SIM_SMTP_PORT"]
    process.terminate()
    process.wait(5)


@pytest.fixture
def call(sim):
    def call(method, path, data=None, token=None, form=False):
        body = (urllib.parse.urlencode(data) if form else json.dumps(data)).encode() if data is not None else None
        headers = {"Content-Type": "application/x-www-form-urlencoded" if form else "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            with urllib.request.urlopen(
                urllib.request.Request(sim[0] + path, body, headers, method=method), timeout=5
            ) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    call("POST", "/_sim/reset", {})
    return call


FB, IG = TOKENS["SIM_FACEBOOK_PAGE_TOKEN"], TOKENS["SIM_INSTAGRAM_TOKEN"]


def test_feed_post(call):
    status, answer = call("POST", "/v21.0/1234/feed", {"message": "Weekend promo", "link": "https://example.org"}, FB)
    assert status == 200 and answer["id"].startswith("1234_")
    [record] = [r for r in call("GET", "/_sim/requests")[1] if r["service"] == "facebook"]
    assert (
        record["params"] == {"message": "Weekend promo", "link": "https://example.org"} and record["token"] == "valid"
    )
    assert FB not in json.dumps(call("GET", "/_sim/requests")[1])


def test_photo_post_as_form_and_query_token(call):
    status, answer = call(
        "POST",
        f"/v25.0/1234/photos?access_token={FB}",
        {"url": "https://example.org/a.jpg", "caption": "New"},
        form=True,
    )
    assert status == 200 and answer["post_id"].startswith("1234_") and answer["id"].isdigit()
    assert call("GET", "/_sim/graph")[1]["posts"][0]["caption"] == "New"


def test_instagram_container_polls_then_publish(call):
    status, container = call(
        "POST", "/v21.0/1784/media", {"image_url": "https://example.org/a.jpg", "caption": "Promo"}, IG
    )
    assert status == 200
    assert call("POST", "/v21.0/1784/media_publish", {"creation_id": container["id"]}, IG)[1]["error"]["code"] == 9007
    polls = [call("GET", f"/v21.0/{container['id']}?fields=status_code", token=IG)[1]["status_code"] for _ in range(2)]
    assert polls == ["IN_PROGRESS", "FINISHED"]
    status, media = call("POST", "/v21.0/1784/media_publish", {"creation_id": container["id"]}, IG)
    assert status == 200 and media["id"].isdigit()
    assert call("GET", f"/v21.0/{container['id']}?fields=status_code", token=IG)[1]["status_code"] == "PUBLISHED"


def test_wrong_token_is_error_190(call):
    status, answer = call("POST", "/v21.0/1234/feed", {"message": "x"}, IG)  # the Instagram token on a Page
    assert status == 400 and answer["error"]["code"] == 190
    assert call("POST", "/v21.0/1784/media", {"image_url": "https://example.org/a.jpg"})[1]["error"]["code"] == 190


def test_scripted_500(call):
    call("POST", "/_sim/graph", {"rules": [{"platform": "facebook", "status": 500}]})
    status, answer = call("POST", "/v21.0/1234/feed", {"message": "x"}, FB)
    assert status == 500 and answer["error"]["code"] == 2
    call("POST", "/_sim/reset", {})
    assert call("POST", "/v21.0/1234/feed", {"message": "x"}, FB)[0] == 200


def test_scripted_container_error(call):
    call("POST", "/_sim/graph", {"rules": [{"platform": "instagram", "container_status": "ERROR", "polls": 0}]})
    container = call("POST", "/v21.0/1784/media", {"image_url": "https://example.org/a.jpg"}, IG)[1]
    assert call("GET", f"/v21.0/{container['id']}?fields=status_code", token=IG)[1]["status_code"] == "ERROR"
    assert call("POST", "/v21.0/1784/media_publish", {"creation_id": container["id"]}, IG)[1]["error"]["code"] == 9007


def test_smtp_round_trip(sim, call):
    pytest.importorskip("aiosmtpd")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "n8n@platform.test", "supervisor@example.com", "Weekly report"
    message.set_content("3 posts published.")
    with (
        smtplib.SMTP("127.0.0.1", sim[1], timeout=5) as smtp,
        pytest.raises(smtplib.SMTPSenderRefused),
    ):  # AUTH required
        smtp.send_message(message)
    with smtplib.SMTP("127.0.0.1", sim[1], timeout=5) as smtp:
        smtp.login("platform", TOKENS["SIM_SMTP_PASSWORD"])
        smtp.send_message(message)
    [mail] = call("GET", "/_sim/mail")[1]
    assert (mail["from"], mail["to"], mail["subject"], mail["body"]) == (
        "n8n@platform.test",
        ["supervisor@example.com"],
        "Weekly report",
        "3 posts published.\n",
    )
    assert mail["login"] == "platform" and mail["received_at"]


def test_messenger_send_api_json_and_form_and_profiles(call):
    """Chatwoot's Messenger send (JSON) and Instagram send (a form), the token in the query; a profile only when set."""
    q = f"?access_token={FB}"
    status, answer = call(
        "POST",
        f"/v3.2/me/messages{q}",
        {"recipient": {"id": "77"}, "message": {"text": "hi"}, "messaging_type": "RESPONSE"},
    )
    assert status == 200 and answer["recipient_id"] == "77" and answer["message_id"]
    status, answer = call("POST", f"/v11.0/me/messages{q}", {"recipient[id]": "88", "message[text]": "hey"}, form=True)
    assert status == 200 and answer["recipient_id"] == "88"
    assert (
        call("POST", "/v3.2/me/messages?access_token=wrong", {"recipient": {"id": "77"}, "message": {"text": "hi"}})[1][
            "error"
        ]["code"]
        == 190
    )
    assert call("GET", f"/88{q}")[1]["error"]["error_subcode"] == 2018218
    call("POST", "/_sim/messenger", {"profiles": {"88": {"id": "88", "name": "Ana", "username": "ana.ig"}}})
    assert call("GET", f"/88{q}") == (200, {"id": "88", "name": "Ana", "username": "ana.ig"})
    sent = [
        r["body"] for r in call("GET", "/_sim/requests")[1] if r["service"] == "messenger" and r["method"] == "POST"
    ]
    assert sent[1] == {"recipient": {"id": "88"}, "message": {"text": "hey"}} and FB not in json.dumps(sent)
