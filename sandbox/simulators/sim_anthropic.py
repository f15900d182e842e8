"""The vendors' SIMULATOR's Anthropic Messages API (see vendors.py): the forced `classify` tool
call answered with scripted intent, confidence and reply, or a scripted error or delay."""

import json
import time
import uuid

from sim_core import LOCK, STATE, SimHandler

DEFAULT_CLASSIFICATION = {
    "intent": "general",
    "confidence": 0.95,
    "reply": "Thanks for your message! A member of our team will follow up shortly.",
    "summary": "General enquiry.",
}
ANTHROPIC_ERRORS = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


class AnthropicHandler(SimHandler):
    def _anthropic(self, body):
        if not self.headers.get("x-api-key") or not self.headers.get("anthropic-version"):
            return 401, {
                "type": "error",
                "error": {"type": "authentication_error", "message": "x-api-key and anthropic-version are required"},
            }
        if not body.get("model") or not isinstance(body.get("max_tokens"), int) or not body.get("messages"):
            return 400, {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "model, max_tokens and messages are required"},
            }
        text = json.dumps(body["messages"][-1].get("content"))
        with LOCK:
            rule = next((r for r in STATE["rules"] if r.get("match", "") in text), {})
            if "times" in rule:  # a rule for the first `times` requests only
                rule["times"] -= 1
                STATE["rules"] = [r for r in STATE["rules"] if r.get("times", 1) > 0]
        time.sleep(float(rule.get("delay", 0)))
        if rule.get("error"):
            status = int(rule["error"])
            return status, {
                "type": "error",
                "error": {"type": ANTHROPIC_ERRORS.get(status, "api_error"), "message": "scripted failure"},
            }
        tool = (body.get("tool_choice") or {}).get("name") or next((t["name"] for t in body.get("tools", [])), None)
        result = {k: rule.get(k, v) for k, v in DEFAULT_CLASSIFICATION.items()}
        content = (
            [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": tool, "input": result}]
            if tool
            else [{"type": "text", "text": result["reply"]}]
        )
        return 200, {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": rule.get("stop_reason") or ("tool_use" if tool else "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": len(text) // 4, "output_tokens": 40},
        }
