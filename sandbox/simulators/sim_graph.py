"""The vendors' SIMULATOR's Meta Graph API posting (see vendors.py): a Page's feed and photos,
Instagram's media containers and their publishing."""

import itertools
import json
import re
import time
from urllib.parse import parse_qs

from sim_core import GRAPH_ERRORS, LOCK, STATE, SimHandler, graph_error

GRAPH_EDGES = {
    "feed": "facebook",
    "photos": "facebook",
    "media": "instagram",
    "media_publish": "instagram",
    None: "instagram",
}
IDS = itertools.count(17900000000000001)  # Graph's ids: long decimal strings


def graph_route(method, path):
    """(platform, object id, edge) of a Graph posting request, or None."""
    match = re.fullmatch(r"/v[0-9.]+/([^/]+)(?:/(feed|photos|media|media_publish))?", path)
    if match and (method == "POST") == bool(match[2]):
        return GRAPH_EDGES[match[2]], match[1], match[2] or "status"


class GraphHandler(SimHandler):
    def _graph_request(self, method, path, query, body, platform, object_id, edge):
        """Graph's posting endpoints: parameters from the query, a form or JSON; recorded without the token."""
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        params.update(
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in (body if isinstance(body, dict) else {}).items()}
        )
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip() or params.get(
            "access_token", ""
        )
        params.pop("access_token", None)
        record = {
            "service": platform,
            "method": method,
            "path": path,
            "object_id": object_id,
            "edge": edge,
            "params": params,
            "token": "valid" if token and token == STATE[f"{platform}_token"] else "invalid" if token else "missing",
            "at": time.time(),
            "headers": {"content-type": self.headers.get("Content-Type")},
        }
        with LOCK:
            STATE["requests"].append(record)
            status, answer = self._graph(platform, object_id, edge, params, record["token"] == "valid")
            record.update(status=status, answer=answer)
        self._answer(status, answer)

    def _graph(self, platform, object_id, edge, params, token_ok):
        if not token_ok:
            return graph_error(190, "Invalid OAuth access token - Cannot parse access token")
        text = params.get("message") or params.get("caption") or ""
        rule = next(
            (
                r
                for r in STATE["graph_rules"]
                if r.get("platform") == platform
                and r.get("edge", edge) == edge
                and r.get("match", "") in text
                and ("error" in r or "status" in r)
            ),
            None,
        )
        if rule and "times" in rule:
            rule["times"] -= 1
            STATE["graph_rules"] = [r for r in STATE["graph_rules"] if r.get("times", 1) > 0]
        if rule and rule.get("status"):
            return graph_error(
                2,
                "An unexpected error has occurred. Please retry your request later.",
                int(rule["status"]),
                is_transient=True,
            )
        if rule:
            return graph_error(
                int(rule["error"]), GRAPH_ERRORS.get(int(rule["error"]), f"(#{rule['error']}) Scripted error")
            )
        post = {"platform": platform, "object_id": object_id, "edge": edge, "at": time.time(), **params}
        return (self._facebook if platform == "facebook" else self._instagram)(object_id, edge, params, text, post)

    def _facebook(self, page_id, edge, params, text, post):
        if edge == "feed" and not (params.get("message") or params.get("link")):
            return graph_error(100, "(#100) The parameter message or link is required")
        if edge == "photos" and not params.get("url"):
            return graph_error(324, "(#324) Requires upload file")
        post["post_id"] = f"{page_id}_{next(IDS)}"
        post["id"] = str(next(IDS)) if edge == "photos" else post["post_id"]
        STATE["posts"].append(post)
        return 200, {"id": post["id"], "post_id": post["post_id"]} if edge == "photos" else {"id": post["id"]}

    def _instagram(self, object_id, edge, params, text, post):
        if edge == "media":
            if not params.get("image_url"):
                return graph_error(100, "(#100) The parameter image_url is required.")
            shape = next(
                (
                    r
                    for r in STATE["graph_rules"]
                    if r.get("platform") == "instagram"
                    and r.get("match", "") in text
                    and ("container_status" in r or "polls" in r)
                ),
                {},
            )
            container = {
                "id": str(next(IDS)),
                "ig_user_id": object_id,
                "image_url": params["image_url"],
                "caption": params.get("caption", ""),
                "polls": int(shape.get("polls", 1)),
                "status": shape.get("container_status", "FINISHED"),
            }
            STATE["containers"][container["id"]] = container
            return 200, {"id": container["id"]}
        container = STATE["containers"].get(object_id if edge == "status" else params.get("creation_id", ""))
        if edge == "status" and not container:
            return graph_error(
                100,
                f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be loaded due to "
                "missing permissions, or does not support this operation",
                error_subcode=33,
            )
        if edge == "status":
            container["polls"] -= 1
            return 200, {
                "status_code": "IN_PROGRESS" if container["polls"] >= 0 else container["status"],
                "id": object_id,
            }
        if not container or container["ig_user_id"] != object_id:
            return graph_error(100, "(#100) Param creation_id must be a valid media container id")
        if container["polls"] > 0 or container["status"] != "FINISHED":
            return graph_error(
                9007,
                "Media ID is not available",
                error_subcode=2207027,
                error_user_msg="The media is not ready for publishing, please wait for a moment",
            )
        container["status"], post["id"] = "PUBLISHED", str(next(IDS))
        STATE["posts"].append({**post, "image_url": container["image_url"], "caption": container["caption"]})
        return 200, {"id": post["id"]}
