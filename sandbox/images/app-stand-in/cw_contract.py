"""The Chatwoot stand-in's request contract (see chatwoot_api.py): what each endpoint accepts, transcribed
from Chatwoot's swagger and controllers, its check (422 naming the field), and the error answers."""

STR, INT, NUM, BOOL, OBJ, ARR, NULL = "string", "integer", "number", "boolean", "object", "array", "null"
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
        {"name": F(STR, True), "channel": F(OBJ, True), "enable_auto_assignment": F(BOOL)},
    ),
    "channel_api": (
        "swagger/definitions/request/inbox/channels/create_api_channel_payload.yml",
        {"type": F(STR, True, ["api"]), "webhook_url": F(STR)},
    ),
    "channel_whatsapp": (
        "swagger/definitions/request/inbox/channels/create_whatsapp_channel_payload.yml",
        {
            "type": F(STR, True, ["whatsapp"]),
            "phone_number": F(STR, True),
            "provider": F(STR, False, ["default", "whatsapp_cloud"]),
            "provider_config": F(OBJ, schema="provider_config"),
        },
    ),
    "provider_config": (
        "swagger/definitions/request/inbox/channels/update_whatsapp_channel_payload.yml (cloud keys); "
        "webhook_verify_token, app_secret, source: app/models/channel/whatsapp.rb, meta_token_verify_concern.rb",
        {
            "api_key": F(STR, True),
            "phone_number_id": F(STR, True),
            "business_account_id": F(STR, True),
            "webhook_verify_token": F(STR),
            "app_secret": F(STR),
            "source": F(STR),
        },
    ),
    "channel_web_widget": (
        "app/models/channel/web_widget.rb EDITABLE_ATTRS (website_url: its presence validation), "
        "inboxes_controller.rb#permitted_params",
        {
            "type": F(STR, True, ["web_widget"]),
            **(
                WIDGET_ATTRS := {
                    "website_url": F(STR, True),
                    "widget_color": F(STR),
                    "welcome_title": F(STR),
                    "welcome_tagline": F(STR),
                    "reply_time": F(STR, False, ["in_a_few_minutes", "in_a_few_hours", "in_a_day"]),
                    "pre_chat_form_enabled": F(BOOL),
                    "continuity_via_email": F(BOOL),
                    "hmac_mandatory": F(BOOL),
                    "allowed_domains": F(STR),
                    "pre_chat_form_options": F(OBJ),
                    "selected_feature_flags": F(ARR, items=F(STR)),
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
        {
            "content": F(STR),
            "referer_url": F(STR),
            "timestamp": F((STR, NUM)),
            "echo_id": F(STR),
            "reply_to": F((INT, NULL)),
        },
    ),
    "inbox_update": (
        "app/controllers/api/v1/accounts/inboxes_controller.rb#permitted_params",
        {"name": F(STR), "channel": F(OBJ), "enable_auto_assignment": F(BOOL)},
    ),
    "channel_api_update": (
        "swagger/definitions/request/inbox/channels/update_api_channel_payload.yml",
        {"webhook_url": F(STR)},
    ),
    "channel_whatsapp_update": (
        "swagger/definitions/request/inbox/channels/update_whatsapp_channel_payload.yml",
        {
            "phone_number": F(STR),
            "provider": F(STR, False, ["whatsapp_cloud", "default"]),
            "provider_config": F(OBJ, schema="provider_config"),
        },
    ),
    "inbox_members": (
        "swagger/paths/application/inboxes/inbox_members/create.yml",
        {"inbox_id": F(INT, True), "user_ids": F(ARR, True, items=F(INT))},
    ),
    "agent_create": (
        "swagger/definitions/request/agent/create_payload.yml",
        {
            "name": F(STR, True),
            "email": F(STR, True),
            "role": F(STR, False, ["agent", "administrator"]),
            "availability": F(STR, False, ["online", "offline", "busy"]),
            "auto_offline": F(BOOL),
        },
    ),
    "team": (
        "swagger/definitions/request/team/create_update_payload.yml (name: Team validations)",
        {"name": F(STR, True), "description": F(STR), "allow_auto_assign": F(BOOL)},
    ),
    "agent_update": (
        "app/controllers/api/v1/accounts/agents_controller.rb#agent_params",
        {
            "name": F(STR),
            "role": F(STR, False, ["agent", "administrator"]),
            "availability": F(STR, False, ["online", "offline", "busy"]),
            "auto_offline": F(BOOL),
        },
    ),
    "team_members": ("swagger/paths/application/team_members/create.yml", {"user_ids": F(ARR, True, items=F(INT))}),
    "label": (
        "app/controllers/api/v1/accounts/labels_controller.rb#permitted_params",
        {"title": F(STR, True), "description": F((STR, NULL)), "color": F(STR), "show_on_sidebar": F(BOOL)},
    ),
    "agent_bot": (
        "app/controllers/api/v1/accounts/agent_bots_controller.rb#permitted_params",
        {
            "name": F(STR, True),
            "description": F((STR, NULL)),
            "outgoing_url": F((STR, NULL)),
            "bot_type": F(STR, False, ["webhook"]),
            "bot_config": F(OBJ),
        },
    ),
    "set_agent_bot": (
        "app/controllers/api/v1/accounts/inboxes_controller.rb#set_agent_bot",
        {"agent_bot": F((INT, NULL), True)},
    ),
    "webhook": (
        "swagger/definitions/request/webhooks/create_update_payload.yml (url, subscriptions: Webhook validations)",
        {"url": F(STR, True), "name": F((STR, NULL)), "subscriptions": F(ARR, True, items=F(STR, enum=WEBHOOK_EVENTS))},
    ),
    "webhook_update": (
        "swagger/definitions/request/webhooks/create_update_payload.yml",
        {"url": F(STR), "name": F((STR, NULL)), "subscriptions": F(ARR, items=F(STR, enum=WEBHOOK_EVENTS))},
    ),
    "contact_create": (
        "swagger/definitions/request/contact/create_payload.yml",
        {
            "inbox_id": F(NUM, True),
            "name": F(STR),
            "email": F(STR),
            "phone_number": F(STR),
            "identifier": F(STR),
            "blocked": F(BOOL),
            "avatar_url": F(STR),
            "additional_attributes": F(OBJ),
            "custom_attributes": F(OBJ),
        },
    ),
    "conversation_create": (
        "swagger/definitions/request/conversation/create_payload.yml",
        {
            "source_id": F(STR, True),
            "inbox_id": F(INT),
            "contact_id": F(INT),
            "additional_attributes": F(OBJ),
            "custom_attributes": F(OBJ),
            "status": F(STR, False, ["open", "resolved", "pending"]),
            "assignee_id": F(INT),
            "team_id": F(INT),
            "snoozed_until": F(STR),
            "message": F(OBJ, schema="conversation_message"),
        },
    ),
    "conversation_message": (
        "swagger/definitions/request/conversation/create_payload.yml (message)",
        {"content": F(STR, True), "template_params": F(OBJ)},
    ),
    "message_create": (
        "swagger/definitions/request/conversation/create_message_payload.yml",
        {
            "content": F(STR, True),
            "message_type": F(STR, False, ["outgoing", "incoming"]),
            "private": F(BOOL),
            "content_type": F(STR, False, ["text", "input_email", "cards", "input_select", "form", "article"]),
            "content_attributes": F(OBJ),
            "campaign_id": F(INT),
            "template_params": F(OBJ),
        },
    ),
    "labels": ("swagger/paths/application/conversation/labels/create.yml", {"labels": F(ARR, True, items=F(STR))}),
    "toggle_status": (
        "swagger/paths/application/conversation/toggle_status.yml",
        {"status": F(STR, True, ["open", "resolved", "pending", "snoozed"]), "snoozed_until": F(NUM)},
    ),
    "toggle_priority": (
        "swagger/paths/application/conversation/toggle_priority.yml",
        {"priority": F((STR, NULL), False, ["urgent", "high", "medium", "low", None])},
    ),
    "assignment": (
        "swagger/paths/application/conversation/assignments.yml",
        {"assignee_id": F((NUM, NULL)), "team_id": F((NUM, NULL))},
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
            or t == STR
            and isinstance(value, str)
            or t == BOOL
            and isinstance(value, bool)
            or t == INT
            and isinstance(value, int)
            and not isinstance(value, bool)
            or t == NUM
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
            or t == OBJ
            and isinstance(value, dict)
            or t == ARR
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
