"""The vendors' SIMULATOR's SMTP sink (see vendors.py): aiosmtpd, keeping every message."""

import email
import email.policy
import logging
import os
import warnings
from datetime import UTC, datetime

from sim_core import LOCK, STATE


class MailSink:
    """aiosmtpd's handler: keeps every message, its text/plain part decoded."""

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        plain, html = (message.get_body(preferencelist=(kind,)) for kind in ("plain", "html"))
        with LOCK:
            STATE["mail"].append(
                {
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "subject": str(message["subject"] or ""),
                    "body": plain.get_content().replace("\r\n", "\n") if plain is not None else None,
                    "html": html.get_content().replace("\r\n", "\n") if html is not None else None,
                    "login": getattr(session.auth_data, "login", b"").decode(errors="replace") or None,
                    "received_at": datetime.now(UTC).isoformat(),
                }
            )
        return "250 OK: queued"


def start_smtp(bind, port):
    """The SMTP sink on its own asyncio loop in a thread (aiosmtpd's Controller)."""
    try:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult
    except ImportError:
        print("[vendors SIMULATOR] aiosmtpd is not importable: no SMTP sink", flush=True)
        return
    user, password = os.environ.get("SIM_SMTP_USER", ""), os.environ.get("SIM_SMTP_PASSWORD", "")
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # no TLS, on purpose: a sandbox sink
    warnings.filterwarnings("ignore", module="aiosmtpd")

    def authenticate(server, session, envelope, mechanism, data):
        ok = not (user or password) or (
            data.login.decode(errors="replace"),
            data.password.decode(errors="replace"),
        ) == (user, password)
        return AuthResult(success=ok, handled=False, auth_data=data)

    Controller(
        MailSink(),
        hostname=bind,
        port=port,
        authenticator=authenticate,
        auth_required=bool(user or password),
        auth_require_tls=False,
    ).start()
    print(f"[vendors SIMULATOR] SMTP on {bind}:{port}" + (" (AUTH required)" if user or password else ""), flush=True)
