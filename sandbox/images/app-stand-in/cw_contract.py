"""The Chatwoot stand-in's request contract (see chatwoot_api.py): what each endpoint accepts, transcribed
from Chatwoot's swagger and controllers, its check (422 naming the field), and the error answers."""

S, I, N, B, O, A, NULL = "string", "integer", "number", "boolean", "object", "array", "null"
WEBHOOK_EVENTS = [
    "conversation_created",
    "conversation_status_changed",
    "conversation_updated",
    "contact_created",
    "contact_updated",
    "message_created",
    "message_updated",
    "webwidget_triggered",
    "inbox_created",
    "inbox_updated",
    "conversation_typing_on",
    "conversation_typing_off",
]  # Webhook::ALLOWED_WEBHOOK_EVENTS


def F(type_, required=False, enum=None, items=None, schema=None):
    return {"type": type_, "required": required, "enum": enum, "items": items, "schema": schema}


# The request contract: name -> (where it was transcribed from, {field: rule}). "required" marks the
# swagger's `required`, plus fields a model validation makes mandatory (noted).
CONTRACT = {
    "inbox_create": (
        "app/controllers/api/v1/accounts/inboxes_controller.rb#permitted_params (name, channel: Inbox validations)",
        {"name": F(S, True), "channel": F(O, True), "enable_auto_assignment": F(B)},
    ),
    "channel_api": (
        "swagger/definitions/request/inbox/channels/create_api_channel_payload.yml",
        {"type": F(S, True, ["api"]), "webhook_url": F(S)},
    ),
    "channel_whatsapp": (
        "swagger/definitions/request/inbox/channels/create_whatsapp_channel_payload.yml",
        {
            "type": F(S, True, ["whatsapp"]),
            "phone_number": F(S, True),
            "provider": F(S, False, ["default", "whatsapp_cloud"]),
            "provider_config": F(O, schema="provider_config"),
        },
    ),
    "provider_config": (
        "swagger/definitions/request/inbox/channels/update_whatsapp_channel_payload.yml (cloud keys); "
        "webhook_verify_token, app_secret, source: app/models/channel/whatsapp.rb, meta_token_verify_concern.rb",
        {
            "api_key": F(S, True),
            "phone_number_id": F(S, True),
            "business_account_id": F(S, True),
            "webhook_verify_token": F(S),
            "app_secret": F(S),
            "source": F(S),
        },
    ),
    "channel_web_widget": (
        "app/models/channel/web_widget.rb EDITABLE_ATTRS (website_url: its presence validation), "
        "inboxes_controller.rb#permitted_params",
        {
            "type": F(S, True, ["web_widget"]),
            **(
                WIDGET_ATTRS := {
                    "website_url": F(S, True),
                    "widget_color": F(S),
                    "welcome_title": F(S),
                    "welcome_tagline": F(S),
                    "reply_time": F(S, False, ["in_a_few_minutes", "in_a_few_hours", "in_a_day"]),
                    "pre_chat_form_enabled": F(B),
                    "continuity_via_email": F(B),
                    "hmac_mandatory": F(B),
                    "allowed_domains": F(S),
                    "pre_chat_form_options": F(O),
                    "selected_feature_flags": F(A, items=F(S)),
                }
            ),
        },
    ),
    "channel_web_widget_update": (
        "app/models/channel/web_widget.rb EDITABLE_ATTRS",
        {k: {**rule, "required": False} for k, rule in WIDGET_ATTRS.items()},
    ),
    "widget_message": (
        "app/controllers/api/v1/widget/messages_controller.rb#permitted_params (message)",
        {"content": F(S), "referer_url": F(S), "timestamp": F((S, N)), "echo_id": F(S), "reply_to": F((I, NULL))},
    ),
    "inbox_update": (
        "app/controllers/api/v1/accounts/inboxes_controller.rb#permitted_params",
        {"name": F(S), "channel": F(O), "enable_auto_assignment": F(B)},
    ),
    "channel_api_update": (
        "swagger/definitions/request/inbox/channels/update_api_channel_payload.yml",
        {"webhook_url": F(S)},
    ),
    "channel_whatsapp_update": (
        "swagger/definitions/request/inbox/channels/update_whatsapp_channel_payload.yml",
        {
            "phone_number": F(S),
            "provider": F(S, False, ["whatsapp_cloud", "default"]),
            "provider_config": F(O, schema="provider_config"),
        },
    ),
    "inbox_members": (
        "swagger/paths/application/inboxes/inbox_members/create.yml",
        {"inbox_id": F(I, True), "user_ids": F(A, True, items=F(I))},
    ),
    "agent_create": (
        "swagger/definitions/request/agent/create_payload.yml",
        {
            "name": F(S, True),
            "email": F(S, True),
            "role": F(S, False, ["agent", "administrator"]),
            "availability": F(S, False, ["online", "offline", "busy"]),
            "auto_offline": F(B),
        },
    ),
    "team": (
        "swagger/definitions/request/team/create_update_payload.yml (name: Team validations)",
        {"name": F(S, True), "description": F(S), "allow_auto_assign": F(B)},
    ),
    "agent_update": (
        "app/controllers/api/v1/accounts/agents_controller.rb#agent_params",
        {
            "name": F(S),
            "role": F(S, False, ["agent", "administrator"]),
            "availability": F(S, False, ["online", "offline", "busy"]),
            "auto_offline": F(B),
        },
    ),
    "team_members": ("swagger/paths/application/team_members/create.yml", {"user_ids": F(A, True, items=F(I))}),
    "label": (
        "app/controllers/api/v1/accounts/labels_controller.rb#permitted_params",
        {"title": F(S, True), "description": F((S, NULL)), "color": F(S), "show_on_sidebar": F(B)},
    ),
    "agent_bot": (
        "app/controllers/api/v1/accounts/agent_bots_controller.rb#permitted_params",
        {
            "name": F(S, True),
            "description": F((S, NULL)),
            "outgoing_url": F((S, NULL)),
            "bot_type": F(S, False, ["webhook"]),
            "bot_config": F(O),
        },
    ),
    "set_agent_bot": (
        "app/controllers/api/v1/accounts/inboxes_controller.rb#set_agent_bot",
        {"agent_bot": F((I, NULL), True)},
    ),
    "webhook": (
        "swagger/definitions/request/webhooks/create_update_payload.yml (url, subscriptions: Webhook validations)",
        {"url": F(S, True), "name": F((S, NULL)), "subscriptions": F(A, True, items=F(S, enum=WEBHOOK_EVENTS))},
    ),
    "webhook_update": (
        "swagger/definitions/request/webhooks/create_update_payload.yml",
        {"url": F(S), "name": F((S, NULL)), "subscriptions": F(A, items=F(S, enum=WEBHOOK_EVENTS))},
    ),
    "contact_create": (
        "swagger/definitions/request/contact/create_payload.yml",
        {
            "inbox_id": F(N, True),
            "name": F(S),
            "email": F(S),
            "phone_number": F(S),
            "identifier": F(S),
            "blocked": F(B),
            "avatar_url": F(S),
            "additional_attributes": F(O),
            "custom_attributes": F(O),
        },
    ),
    "conversation_create": (
        "swagger/definitions/request/conversation/create_payload.yml",
        {
            "source_id": F(S, True),
            "inbox_id": F(I),
            "contact_id": F(I),
            "additional_attributes": F(O),
            "custom_attributes": F(O),
            "status": F(S, False, ["open", "resolved", "pending"]),
            "assignee_id": F(I),
            "team_id": F(I),
            "snoozed_until": F(S),
            "message": F(O, schema="conversation_message"),
        },
    ),
    "conversation_message": (
        "swagger/definitions/request/conversation/create_payload.yml (message)",
        {"content": F(S, True), "template_params": F(O)},
    ),
    "message_create": (
        "swagger/definitions/request/conversation/create_message_payload.yml",
        {
            "content": F(S, True),
            "message_type": F(S, False, ["outgoing", "incoming"]),
            "private": F(B),
            "content_type": F(S, False, ["text", "input_email", "cards", "input_select", "form", "article"]),
            "content_attributes": F(O),
            "campaign_id": F(I),
            "template_params": F(O),
        },
    ),
    "labels": ("swagger/paths/application/conversation/labels/create.yml", {"labels": F(A, True, items=F(S))}),
    "toggle_status": (
        "swagger/paths/application/conversation/toggle_status.yml",
        {"status": F(S, True, ["open", "resolved", "pending", "snoozed"]), "snoozed_until": F(N)},
    ),
    "toggle_priority": (
        "swagger/paths/application/conversation/toggle_priority.yml",
        {"priority": F((S, NULL), False, ["urgent", "high", "medium", "low", None])},
    ),
    "assignment": (
        "swagger/paths/application/conversation/assignments.yml",
        {"assignee_id": F((N, NULL)), "team_id": F((N, NULL))},
    ),
}


class Reply(Exception):
    def __init__(self, status, body):
        super().__init__(status)
        self.status, self.body = status, body


def not_found():
    return Reply(404, {"error": "Resource could not be found"})


def invalid(attribute, message):  # Chatwoot's render_record_invalid
    return Reply(422, {"message": message, "attributes": [attribute]})


def _type_ok(value, types):
    for t in types if isinstance(types, tuple) else (types,):
        if (
            t == NULL
            and value is None
            or t == S
            and isinstance(value, str)
            or t == B
            and isinstance(value, bool)
            or t == I
            and isinstance(value, int)
            and not isinstance(value, bool)
            or t == N
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
            or t == O
            and isinstance(value, dict)
            or t == A
            and isinstance(value, list)
        ):
            return True
    return False


def check(name, body, prefix=""):
    """Refuses (422, naming the field) a body that does not match CONTRACT[name]."""
    source, fields = CONTRACT[name]

    def refuse(path, problem):
        return Reply(422, {"message": f"{path} {problem}", "attributes": [path], "contract": source})

    def value_ok(value, rule, path):
        if not _type_ok(value, rule["type"]):
            raise refuse(path, f"must be of type {rule['type']}")
        if rule["enum"] is not None and value not in rule["enum"]:
            raise refuse(path, f"must be one of {rule['enum']}")
        for i, item in enumerate(value if rule["items"] and isinstance(value, list) else []):
            value_ok(item, rule["items"], f"{path}[{i}]")
        if rule["schema"] and isinstance(value, dict):
            check(rule["schema"], value, path + ".")

    if not isinstance(body, dict):
        raise refuse(prefix.rstrip(".") or "body", "must be a JSON object")
    for field, rule in fields.items():
        if field in body:
            value_ok(body[field], rule, prefix + field)
        elif rule["required"]:
            raise refuse(prefix + field, "is required")
