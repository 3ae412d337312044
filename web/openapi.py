"""The OpenAPI 3.1 description of /api/v1 (tests validate real responses against it)."""

from __future__ import annotations

from typing import Any

from hub.types import JSON

_STR = {"type": "string"}
_INT = {"type": "integer"}
_TIME = {"type": "string", "format": "date-time"}
_NTIME = {"type": ["string", "null"], "format": "date-time"}


def _obj(props: dict[str, Any], required: list[str] | None = None, nullable: bool = False) -> JSON:
    schema: JSON = {"type": ["object", "null"] if nullable else "object", "properties": props,
                    "required": required if required is not None else list(props)}
    return schema


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(item: JSON) -> JSON:
    return _obj({"items": {"type": "array", "items": item}, "next_cursor": {"type": ["string", "null"]}})


SCHEMAS: dict[str, JSON] = {
    "Error": _obj({"error": _STR}),
    "Agent": _obj({"id": _INT, "email": _STR, "name": _STR, "role": {"enum": ["agent", "manager", "admin"]}}),
    "Login": _obj({"token": _STR, "agent": _ref("Agent")}),
    "Channel": _obj({
        "id": _INT, "kind": _STR, "name": _STR, "settings": {"type": "object"}, "enabled": {"type": "boolean"},
        "last_error": {"type": ["string", "null"]}, "last_error_at": _NTIME,
    }),
    "Conversation": _obj({
        "id": _INT, "client_id": _INT, "client": _obj({"id": _INT, "name": _STR}),
        "channel": _obj({"id": _INT, "kind": _STR, "name": _STR}), "subject": _STR,
        "status": {"enum": ["open", "pending", "resolved", "snoozed"]}, "snoozed_until": _NTIME,
        "assignee": _obj({"id": _INT, "name": _STR}, nullable=True), "unread_count": _INT,
        "created_at": _TIME, "last_activity_at": _TIME, "first_response_at": _NTIME, "resolved_at": _NTIME,
        "last_message": _obj({"text": _STR, "direction": {"enum": ["in", "out"]}, "created_at": _TIME}, nullable=True),
        "team": _obj({"id": _INT, "name": _STR}, nullable=True),
        "priority": {"enum": ["normal", "high", "urgent"]},
        "sla": _obj({
            "due_at": {**_NTIME, "description": "the next running clock's due time; null: none runs (paused, answered)"},
            "overdue": {"type": "boolean"}, "breached": {"type": "array", "items": _STR},
            "paused": {"type": "boolean", "description": "a clock is paused (pending, snoozed) and resumes when the"
                                                         " conversation opens again"},
            "clocks": {"type": "array", "items": _obj({
                "metric": {"enum": ["first_response", "next_response", "resolution"]},
                "started_at": {**_TIME, "description": "the customer message it runs from"},
                "due_at": {**_TIME, "description": "business hours and pauses counted; a paused clock's is the one it"
                                                   " had when it paused, and moves when it resumes"},
                "stopped_at": {**_NTIME, "description": "answered, resolved or paused"},
                "paused_at": {**_NTIME, "description": "set while paused (pending, snoozed): stopped, but will resume"},
                "breached_at": _NTIME, "overdue": {"type": "boolean"},
            })},
        }, nullable=True),
    }),
    "Attachment": _obj({"sha256": _STR, "filename": _STR, "content_type": _STR, "size": _INT, "kind": _STR, "url": _STR}),
    "Message": _obj({
        "id": _INT, "conversation_id": _INT, "channel_id": _INT, "channel": _STR,
        "direction": {"enum": ["in", "out"]}, "text": _STR, "html": _STR,
        "original_text": {**_STR, "description": "the whole text when `text` has quotes or a signature folded away; '' otherwise"},
        "attachments": {"type": "array", "items": _ref("Attachment")}, "flags": {"type": "array", "items": _STR},
        "status": {"enum": ["received", "queued", "sent", "delivered", "failed"]}, "error": _STR,
        "author": _obj({"type": {"enum": ["client", "agent", "channel"]}, "id": {"type": ["integer", "null"]}, "name": _STR}),
        "created_at": _TIME, "sent_at": _NTIME, "edited_at": _NTIME,
    }),
    "Note": _obj({
        "id": _INT, "conversation_id": {"type": ["integer", "null"]}, "client_id": _INT,
        "author": _obj({"id": _INT, "name": _STR}), "text": _STR, "created_at": _TIME,
    }),
    "Event": _obj({
        "id": _INT, "type": _STR, "client_id": {"type": ["integer", "null"]},
        "conversation_id": {"type": ["integer", "null"]},
        "actor": _obj({"id": _INT, "name": _STR}, nullable=True), "data": {"type": "object"}, "created_at": _TIME,
    }),
    "Client": _obj({"id": _INT, "name": _STR, "email": _STR, "phone": _STR, "segment": _STR,
                    "tags": {"type": "array", "items": _STR}, "created_at": _TIME,
                    "custom_fields": {"type": "object"}, "first_touch": {"type": "object"}},
                   required=["id", "name", "email", "phone", "segment", "tags", "created_at"]),
    "Identity": _obj({
        "id": _INT, "channel": _obj({"id": _INT, "kind": _STR, "name": _STR}),
        "external_id": _STR, "display_name": _STR, "username": _STR,
    }),
    "ClientCard": {
        "allOf": [_ref("Client")],
        "type": "object",
        "required": ["identities", "identities_total", "identities_next_cursor", "conversations", "conversations_total",
                     "conversations_next_cursor", "timeline", "timeline_next_cursor", "custom_fields", "first_touch",
                     "notes", "merges"],
        "properties": {
            "identities": {"type": "array", "items": _ref("Identity"),
                           "description": "the newest 50 (by id), newest first; GET /api/v1/clients/{id}/identities pages on"},
            "identities_total": _INT,
            "identities_next_cursor": {"type": ["string", "null"],
                                       "description": "cursor for /api/v1/clients/{id}/identities; null: all shown"},
            "conversations": {"type": "array", "items": _ref("Conversation"),
                              "description": "the newest 50; GET /api/v1/clients/{id}/conversations pages on"},
            "conversations_total": _INT,
            "conversations_next_cursor": {"type": ["string", "null"],
                                          "description": "cursor for /api/v1/clients/{id}/conversations; null: all shown"},
            "timeline": {"type": "array", "items": _ref("Event"),
                         "description": "the newest 100 events, oldest first; GET /api/v1/clients/{id}/timeline pages on"},
            "timeline_next_cursor": {"type": ["string", "null"],
                                     "description": "cursor for /api/v1/clients/{id}/timeline (older events); null: all shown"},
            "notes": {"type": "array", "items": _ref("Note")},
            "merges": {"type": "array", "items": _ref("Merge")},
        },
    },
    "Team": _obj({
        "id": _INT, "name": _STR, "auto_assign": {"type": "boolean"},
        "members": {"type": "array", "items": _obj({"id": _INT, "name": _STR, "role": _STR})},
        "channels": {"type": "array", "items": _obj({"id": _INT, "kind": _STR, "name": _STR})}, "created_at": _TIME,
    }),
    "Presence": _obj({
        "agent": _obj({"id": _INT, "name": _STR, "role": _STR}), "status": {"enum": ["online", "away", "offline"]},
        "last_seen_at": _NTIME, "status_changed_at": _NTIME, "capacity": _INT, "open_conversations": _INT,
        "team_ids": {"type": "array", "items": _INT},
    }),
    "RoutingSettings": _obj({"offline_grace_seconds": _INT, "return_on_offline": {"type": "boolean"},
                             "default_capacity": _INT}),
    "QueueEntry": _obj({"position": _INT, "vip": {"type": "boolean"}, "waiting_since": _TIME,
                        "conversation": _ref("Conversation")}),
    "SlaPolicy": _obj({
        "id": _INT, "name": _STR, "team_id": {"type": ["integer", "null"]}, "segment": _STR,
        "first_response_seconds": {"type": ["integer", "null"]}, "next_response_seconds": {"type": ["integer", "null"]},
        "resolution_seconds": {"type": ["integer", "null"]}, "business_hours_id": {"type": ["integer", "null"]},
        "created_at": _TIME,
    }),
    "BusinessHours": _obj({
        "id": _INT, "name": _STR, "time_zone": _STR,
        "schedule": {"type": "object", "additionalProperties": {"type": "array", "items": {
            "type": "array", "items": _STR, "minItems": 2, "maxItems": 2}}},
        "holidays": {"type": "array", "items": {"type": "string", "format": "date"}}, "created_at": _TIME,
    }),
    "ContactRule": _obj({"id": _INT, "segment": _STR, "every_days": _INT, "created_at": _TIME}),
    "DueForContact": _obj({
        "client": _ref("Client"), "rule": _obj({"id": {"type": ["integer", "null"]}, "segment": _STR, "every_days": _INT}),
        "last_contact_at": _NTIME, "due_at": _TIME,
    }),
    "Report": _obj({"columns": {"type": "array", "items": _STR}, "items": {"type": "array", "items": {"type": "object"}},
                    "next_cursor": {"type": "null"}}),
}

_NMIN = {"type": ["number", "null"], "description": "minutes, wall-clock; null: no first response"}
_REPORT_ROWS: dict[str, JSON] = {
    "VolumeReport": _obj({"day": {"type": "string", "format": "date"}, "channel": _STR, "inbound": _INT,
                          "outbound": _INT, "conversations": _INT}),
    "AgentReport": _obj({
        "agent_id": _INT, "agent": _STR,
        "conversations": {**_INT, "description": "conversations the agent replied in during the period"},
        "replies": _INT,
        "first_responses": {**_INT, "description": "first replies to a customer's first message, given in the period"},
        "median_first_response_min": _NMIN, "p90_first_response_min": _NMIN,
        "late_first_responses": {**_INT, "description": "first responses after the SLA first-response due time"},
        "sla_breaches": {**_INT, "description": "breaches in the period while the conversation was theirs"},
    }),
    "FirstResponseReport": _obj({
        "conversation_id": _INT, "client": _STR, "agent_id": _INT, "agent": _STR,
        "customer_at": {**_TIME, "description": "the customer's first message"},
        "replied_at": {**_TIME, "description": "the first agent reply after it"},
        "minutes": {"type": "number", "description": "wall-clock, from the message to the reply"},
        "due_at": {**_NTIME, "description": "the SLA first-response due time; null: no policy covered it"},
        "late": {"type": "boolean"},
    }),
    "SlaBreachReport": _obj({
        "id": _INT, "conversation_id": _INT, "client": _STR,
        "metric": {"enum": ["first_response", "next_response", "resolution"]},
        "policy": {"type": ["string", "null"]}, "team": {"type": ["string", "null"]},
        "assignee": {"type": ["string", "null"]}, "segment": _STR,
        "started_at": _TIME, "due_at": _TIME, "breached_at": _TIME,
    }),
}
SCHEMAS.update({
    name: _obj({"columns": {"type": "array", "items": _STR}, "items": {"type": "array", "items": row},
                "next_cursor": {"type": "null"}})
    for name, row in _REPORT_ROWS.items()
})


def _json(schema: JSON, description: str = "OK") -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: JSON) -> JSON:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_ERR = _json(_ref("Error"), "error")
_ID = [{"name": "id", "in": "path", "required": True, "schema": _INT}]
_PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
    {"name": "cursor", "in": "query", "schema": _STR},
]


def _op(summary: str, role: str | None, responses: dict[str, JSON], **extra: Any) -> JSON:
    op: JSON = {"summary": summary, "responses": {**responses, "4XX": _ERR}, **extra}
    if role:
        op["x-required-role"] = role
        op["security"] = [{"bearer": []}, {"cookie": []}]
    return op


PATHS: JSON = {
    "/api/v1/auth/login": {"post": _op("Log in; returns a Bearer token and sets the session cookie", None,
                                       {"200": _json(_ref("Login"))},
                                       requestBody=_body(_obj({"email": _STR, "password": _STR})))},
    "/api/v1/auth/logout": {"post": _op("End this session", "agent", {"200": _json(_obj({"ok": {"type": "boolean"}}))})},
    "/api/v1/me": {"get": _op("The logged-in agent", "agent", {"200": _json(_ref("Agent"))})},
    "/api/v1/agents": {"get": _op("The team", "agent", {"200": _json(_list(_ref("Agent")))})},
    "/api/v1/channels": {"get": _op("Connected channels (never their secrets)", "agent", {"200": _json(_list(_ref("Channel")))})},
    "/api/v1/conversations": {"get": _op(
        "Conversations, newest activity first", "agent", {"200": _json(_list(_ref("Conversation")))},
        parameters=[
            {"name": "status", "in": "query", "schema": {"enum": ["open", "pending", "resolved", "snoozed"]}},
            {"name": "channel", "in": "query", "schema": _STR, "description": "channel id or kind"},
            {"name": "assignee", "in": "query", "schema": _STR, "description": "agent id, `me` or `none`"},
            {"name": "q", "in": "query", "schema": _STR, "description": "full-text search in messages, client name"},
            *_PAGING,
        ])},
    "/api/v1/conversations/{id}": {"get": _op("One conversation", "agent", {"200": _json(_ref("Conversation"))}, parameters=_ID)},
    "/api/v1/conversations/{id}/messages": {
        "get": _op("Messages, oldest first (order=desc: newest first, the cursor pages to older ones)", "agent",
                   {"200": _json(_list(_ref("Message")))},
                   parameters=[*_ID, {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"], "default": "asc"}},
                               *_PAGING]),
        "post": _op("Reply through the conversation's channel", "agent", {"201": _json(_ref("Message"))},
                    parameters=_ID, requestBody={"required": True, "content": {
                        "application/json": {"schema": _obj({"text": _STR})},
                        "multipart/form-data": {"schema": _obj({
                            "text": _STR, "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        }, required=[])},
                    }}),
    },
    "/api/v1/conversations/{id}/notes": {
        "get": _op("Private notes", "agent", {"200": _json(_list(_ref("Note")))}, parameters=_ID),
        "post": _op("Add a private note", "agent", {"201": _json(_ref("Note"))}, parameters=_ID,
                    requestBody=_body(_obj({"text": _STR}))),
    },
    "/api/v1/conversations/{id}/assign": {"post": _op(
        "Assign to an agent (null: unassign)", "agent", {"200": _json(_ref("Conversation"))}, parameters=_ID,
        requestBody=_body(_obj({"agent_id": {"type": ["integer", "null"]}})))},
    "/api/v1/conversations/{id}/status": {"post": _op(
        "Set status", "agent", {"200": _json(_ref("Conversation"))}, parameters=_ID,
        requestBody=_body(_obj({"status": {"enum": ["open", "pending", "resolved", "snoozed"]}, "snoozed_until": _TIME},
                               required=["status"])))},
    "/api/v1/conversations/{id}/read": {"post": _op("Mark read", "agent", {"200": _json(_ref("Conversation"))}, parameters=_ID)},
    "/api/v1/reply-limits": {"get": _op(
        "What a reply may carry: bytes per file, files per reply, characters of text", "agent",
        {"200": _json(_obj({"max_file_bytes": _INT, "max_files": _INT, "max_text_chars": _INT}))})},
    "/api/v1/messages/{id}/retry": {"post": _op("Queue a failed reply again", "agent", {"200": _json(_ref("Message"))}, parameters=_ID)},
    "/api/v1/clients": {"get": _op("Clients", "agent", {"200": _json(_list(_ref("Client")))},
                                   parameters=[{"name": "q", "in": "query", "schema": _STR}, *_PAGING])},
    "/api/v1/clients/{id}": {
        "get": _op("The client card", "agent", {"200": _json(_ref("ClientCard"))}, parameters=_ID),
        "patch": _op("Edit the card", "agent", {"200": _json(_ref("ClientCard"))}, parameters=_ID,
                     requestBody=_body(_obj({"name": _STR, "email": _STR, "phone": _STR, "segment": _STR,
                                             "tags": {"type": "array", "items": _STR},
                                             "custom_fields": {"type": "object", "description": "merge patch: null removes"}},
                                            required=[]))),
    },
    "/api/v1/clients/{id}/conversations": {"get": _op(
        "The client's conversations, newest first (the card holds the first page)", "agent",
        {"200": _json(_list(_ref("Conversation")))}, parameters=[*_ID, *_PAGING])},
    "/api/v1/clients/{id}/identities": {"get": _op(
        "The client's identities, newest first (the card holds the first page)", "agent",
        {"200": _json(_list(_ref("Identity")))}, parameters=[*_ID, *_PAGING])},
    "/api/v1/clients/{id}/timeline": {"get": _op(
        "The client's timeline, newest event first (the card holds the newest 100; the card's"
        " timeline_next_cursor continues below them)", "agent",
        {"200": _json(_list(_ref("Event")))}, parameters=[*_ID, *_PAGING])},
    "/api/v1/clients/{id}/merge": {"post": _op("Merge another client into this one", "agent", {"200": _json(_ref("ClientCard"))},
                                               parameters=_ID, requestBody=_body(_obj({"other_id": _INT})))},
    "/api/v1/blobs/{sha256}": {"get": _op("An attachment", "agent", {"200": {"description": "the file"}},
                                          parameters=[{"name": "sha256", "in": "path", "required": True, "schema": _STR}])},
    "/api/v1/reports/volume": {"get": _op(
        "Messages and conversations per day and channel", "manager", {"200": _json(_ref("VolumeReport"))},
        parameters=[{"name": "from", "in": "query", "schema": _STR}, {"name": "to", "in": "query", "schema": _STR},
                    {"name": "tz", "in": "query", "schema": _STR,
                     "description": "IANA time zone the days are counted in (default UTC)"},
                    {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}}])},
    "/api/v1/reports/first-responses": {"get": _op(
        "Each first response given in the period (the rows behind the agents report)", "manager",
        {"200": _json(_ref("FirstResponseReport"))},
        parameters=[{"name": "from", "in": "query", "schema": _STR}, {"name": "to", "in": "query", "schema": _STR},
                    {"name": "agent", "in": "query", "schema": _INT, "description": "only this agent's"},
                    {"name": "late", "in": "query", "schema": {"enum": ["1", "true"]}, "description": "only late ones"},
                    {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}}])},
    "/api/v1/reports/agents": {"get": _op(
        "Per agent: conversations, replies, first-response times, late first responses, SLA breaches", "manager",
        {"200": _json(_ref("AgentReport"))},
        parameters=[{"name": "from", "in": "query", "schema": _STR}, {"name": "to", "in": "query", "schema": _STR},
                    {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}}])},
}

_OK = {"200": _json(_obj({"ok": {"type": "boolean"}}))}
_PERIOD = [{"name": "from", "in": "query", "schema": _STR}, {"name": "to", "in": "query", "schema": _STR},
           {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}}]
_IDS = {"type": "array", "items": _INT}
_SECONDS = {"type": ["integer", "null"], "minimum": 1}

# Routing and regulations (web/api_routing.py, docs/routing.md).
PATHS.update({
    "/api/v1/teams": {
        "get": _op("Teams with their members and channels", "agent", {"200": _json(_list(_ref("Team")))}),
        "post": _op("Create a team", "admin", {"201": _json(_ref("Team"))}, requestBody=_body(_obj(
            {"name": _STR, "auto_assign": {"type": "boolean"}, "agent_ids": _IDS, "channel_ids": _IDS}, required=["name"]))),
    },
    "/api/v1/teams/{id}": {
        "get": _op("One team", "agent", {"200": _json(_ref("Team"))}, parameters=_ID),
        "patch": _op("Rename, switch auto-assignment, replace members or channels (a channel serves one team)", "admin",
                     {"200": _json(_ref("Team"))}, parameters=_ID, requestBody=_body(_obj(
                         {"name": _STR, "auto_assign": {"type": "boolean"}, "agent_ids": _IDS, "channel_ids": _IDS},
                         required=[]))),
        "delete": _op("Delete a team", "admin", _OK, parameters=_ID),
    },
    "/api/v1/presence": {"get": _op("Every agent's presence, capacity and open conversations", "agent",
                                    {"200": _json(_list(_ref("Presence")))})},
    "/api/v1/presence/{id}/capacity": {"put": _op(
        "An agent's capacity (most open conversations auto-assignment gives them; null: the default)", "admin",
        {"200": _json(_ref("Presence"))}, parameters=_ID,
        requestBody=_body(_obj({"capacity": {"type": ["integer", "null"], "minimum": 0}})))},
    "/api/v1/routing/settings": {
        "get": _op("Routing settings", "agent", {"200": _json(_ref("RoutingSettings"))}),
        "patch": _op("Change routing settings", "admin", {"200": _json(_ref("RoutingSettings"))},
                     requestBody=_body(_obj({"offline_grace_seconds": _INT, "return_on_offline": {"type": "boolean"},
                                             "default_capacity": _INT}, required=[]))),
    },
    "/api/v1/queue": {"get": _op(
        "Open conversations nobody has, in the order they are handed out (VIP and escalated first)", "agent",
        {"200": _json(_list(_ref("QueueEntry")))},
        parameters=[{"name": "team", "in": "query", "schema": _STR, "description": "team id or `none`"}, *_PAGING])},
    "/api/v1/conversations/{id}/take": {"post": _op(
        "Take the conversation (from the queue or from a colleague)", "agent", {"200": _json(_ref("Conversation"))},
        parameters=_ID)},
    "/api/v1/sla/policies": {
        "get": _op("SLA policies", "agent", {"200": _json(_list(_ref("SlaPolicy")))}),
        "post": _op("Add an SLA policy (targets in seconds of business time)", "admin", {"201": _json(_ref("SlaPolicy"))},
                    requestBody=_body(_obj({
                        "name": _STR, "team_id": {"type": ["integer", "null"]}, "segment": _STR,
                        "first_response_seconds": _SECONDS, "next_response_seconds": _SECONDS,
                        "resolution_seconds": _SECONDS, "business_hours_id": {"type": ["integer", "null"]},
                    }, required=["name"]))),
    },
    "/api/v1/sla/policies/{id}": {"delete": _op("Delete an SLA policy", "admin", _OK, parameters=_ID)},
    "/api/v1/business-hours": {
        "get": _op("Business hours", "agent", {"200": _json(_list(_ref("BusinessHours")))}),
        "post": _op("Add business hours", "admin", {"201": _json(_ref("BusinessHours"))}, requestBody=_body(_obj({
            "name": _STR, "time_zone": _STR, "schedule": {"type": "object"},
            "holidays": {"type": "array", "items": _STR}}, required=["name", "time_zone", "schedule"]))),
    },
    "/api/v1/business-hours/{id}": {"delete": _op("Delete business hours", "admin", _OK, parameters=_ID)},
    "/api/v1/reports/sla-breaches": {"get": _op("SLA breaches", "manager", {"200": _json(_ref("SlaBreachReport"))},
                                                parameters=_PERIOD)},
    "/api/v1/contact-rules": {
        "get": _op("Contact cadence rules", "agent", {"200": _json(_list(_ref("ContactRule")))}),
        "post": _op("Add a contact cadence rule", "admin", {"201": _json(_ref("ContactRule"))},
                    requestBody=_body(_obj({"segment": _STR, "every_days": {"type": "integer", "minimum": 1}}))),
    },
    "/api/v1/contact-rules/{id}": {"delete": _op("Delete a contact cadence rule", "admin", _OK, parameters=_ID)},
    "/api/v1/clients/due-for-contact": {"get": _op(
        "Clients with no contact from us for their rule's days", "agent", {"200": _json(_list(_ref("DueForContact")))},
        parameters=[{"name": "segment", "in": "query", "schema": _STR},
                    {"name": "days", "in": "query", "schema": {"type": "integer", "minimum": 1},
                     "description": "with segment: an ad-hoc rule instead of the stored ones"}, *_PAGING])},
})


# One card per person and history review (web/api_card.py, web/api_history.py, docs/history.md).
_WHO = _obj({"id": _INT, "name": _STR}, nullable=True)
_FORMAT = {"name": "format", "in": "query", "schema": {"enum": ["json", "csv", "txt"], "default": "json"}}
_FILE = {"description": "the transcript", "content": {"text/csv": {}, "text/plain": {}}}
_SEARCH_PARAMS = [
    {"name": "q", "in": "query", "required": True, "schema": _STR,
     "description": "words (web search syntax: \"a phrase\", or, -word); Russian and English stemming"},
    {"name": "channel", "in": "query", "schema": _STR, "description": "channel id or kind"},
    {"name": "agent", "in": "query", "schema": _STR,
     "description": "agent id or `me`: written by them or in a conversation assigned to them"},
    {"name": "tag", "in": "query", "schema": _STR, "description": "the client's tag"},
    {"name": "from", "in": "query", "schema": _STR}, {"name": "to", "in": "query", "schema": _STR},
    {"name": "status", "in": "query", "schema": {"enum": ["open", "pending", "resolved", "snoozed"]}},
]
_TRANSCRIPT_ITEM = _obj({
    "kind": {"enum": ["message", "note"]}, "id": _INT, "created_at": _TIME,
    "direction": {"enum": ["in", "out", None]},
    "author": _obj({"type": {"enum": ["client", "agent", "channel"]}, "id": {"type": ["integer", "null"]}, "name": _STR}),
    "status": {"type": ["string", "null"]}, "text": _STR, "attachments": {"type": "array", "items": _STR},
})
_CONVERSATION_TRANSCRIPT = _obj({"conversation": _ref("Conversation"),
                                 "items": {"type": "array", "items": _TRANSCRIPT_ITEM}})
_HIT: JSON = {
    "kind": {"enum": ["message", "note"]}, "id": _INT, "conversation_id": {"type": ["integer", "null"]},
    "client": _obj({"id": _INT, "name": _STR}),
    "channel": _obj({"id": _INT, "kind": _STR, "name": _STR}, nullable=True),
    "conversation_status": {"enum": ["open", "pending", "resolved", "snoozed", None]},
    "direction": {"enum": ["in", "out", None]},
    "author": _obj({"type": {"enum": ["client", "agent", "channel"]}, "id": {"type": ["integer", "null"]}, "name": _STR}),
    "created_at": _TIME,
}
SCHEMAS.update({
    "Merge": _obj({
        "id": _INT, "survivor": _obj({"id": _INT, "name": _STR}), "merged": _obj({"id": _INT, "name": _STR}),
        "merged_by": _WHO, "merged_at": _TIME, "undone_by": _WHO, "undone_at": _NTIME,
        "moved": _obj({"identity": _INT, "conversation": _INT, "note": _INT, "event": _INT}),
    }),
    "MergeSuggestion": _obj({
        "id": _INT, "reason": {"enum": ["same_name_and_phone", "email_in_message"]}, "evidence": {"type": "object"},
        "status": {"enum": ["pending", "confirmed", "dismissed"]},
        "clients": {"type": "array", "minItems": 2, "maxItems": 2,
                    "items": _obj({"id": _INT, "name": _STR, "email": _STR, "phone": _STR})},
        "merge_id": {"type": ["integer", "null"]}, "decided_by": _WHO, "decided_at": _NTIME, "created_at": _TIME,
    }),
    "SearchHit": _obj({**_HIT, "headline": {"type": "string", "description": "HTML: the text escaped, matches in <mark>"}}),
    "AuditEntry": _obj({
        "id": _INT, "agent": _WHO, "action": _STR, "conversation_id": {"type": ["integer", "null"]},
        "client_id": {"type": ["integer", "null"]}, "details": {"type": "object"}, "created_at": _TIME,
    }),
})
PATHS.update({
    "/api/v1/clients/{id}/notes": {
        "get": _op("Every note about the client (on the card and on its conversations)", "agent",
                   {"200": _json(_list(_ref("Note")))}, parameters=_ID),
        "post": _op("Add a note to the card itself", "agent", {"201": _json(_ref("Note"))}, parameters=_ID,
                    requestBody=_body(_obj({"text": _STR}))),
    },
    "/api/v1/clients/{id}/merges": {"get": _op("Merges this card took part in, newest first", "agent",
                                               {"200": _json(_list(_ref("Merge")))}, parameters=_ID)},
    "/api/v1/merges/{id}/undo": {"post": _op("Undo a merge: the merged card and what it brought come back", "agent",
                                             {"200": _json(_ref("Merge"))}, parameters=_ID)},
    "/api/v1/merge-suggestions": {"get": _op("Pending merge suggestions", "agent",
                                             {"200": _json(_list(_ref("MergeSuggestion")))}, parameters=_PAGING)},
    "/api/v1/clients/{id}/merge-suggestions": {"get": _op(
        "Pending merge suggestions for this card", "agent", {"200": _json(_list(_ref("MergeSuggestion")))},
        parameters=[*_ID, *_PAGING])},
    "/api/v1/merge-suggestions/{id}/confirm": {"post": _op(
        "Merge the two cards (the older survives unless survivor_id says otherwise)", "agent",
        {"200": _json(_ref("ClientCard"))}, parameters=_ID,
        requestBody=_body(_obj({"survivor_id": _INT}, required=[])))},
    "/api/v1/merge-suggestions/{id}/dismiss": {"post": _op(
        "They are two people: never suggest this pair for this reason again", "agent",
        {"200": _json(_ref("MergeSuggestion"))}, parameters=_ID)},
    "/api/v1/search": {"get": _op(
        "Full-text search over messages and notes, newest first, with highlights", "manager",
        {"200": _json(_list(_ref("SearchHit")))}, parameters=[*_SEARCH_PARAMS, *_PAGING])},
    "/api/v1/search/export": {"get": _op(
        f"A search result with full texts (at most {10_000} hits; JSON says whether it was cut)", "manager",
        {"200": {**_json(_obj({"query": {"type": "object"}, "truncated": {"type": "boolean"},
                                "items": {"type": "array", "items": _obj({**_HIT, "text": _STR})}})),
                 **{"description": "the hits"}}, "x-other-formats": _FILE},
        parameters=[*_SEARCH_PARAMS, _FORMAT])},
    "/api/v1/conversations/{id}/transcript": {"get": _op(
        "The conversation's messages and notes in order, as JSON, CSV or text", "manager",
        {"200": _json(_CONVERSATION_TRANSCRIPT)}, parameters=[*_ID, _FORMAT])},
    "/api/v1/clients/{id}/transcript": {"get": _op(
        "Every conversation of the client, as JSON, CSV or text", "manager",
        {"200": _json(_obj({
            "client": _obj({"id": _INT, "name": _STR, "email": _STR, "phone": _STR}),
            "notes": {"type": "array", "items": _TRANSCRIPT_ITEM},
            "conversations": {"type": "array", "items": _CONVERSATION_TRANSCRIPT},
        }))}, parameters=[*_ID, _FORMAT])},
    "/api/v1/audit": {"get": _op(
        "The audit log of agent actions, newest first", "manager", {"200": _json(_list(_ref("AuditEntry")))},
        parameters=[{"name": "agent", "in": "query", "schema": _STR, "description": "agent id or `me`"},
                    {"name": "action", "in": "query", "schema": _STR},
                    {"name": "conversation", "in": "query", "schema": _INT},
                    {"name": "client", "in": "query", "schema": _INT},
                    {"name": "from", "in": "query", "schema": _STR}, {"name": "to", "in": "query", "schema": _STR},
                    *_PAGING])},
})


def openapi_document() -> JSON:
    return {
        "openapi": "3.1.0",
        "info": {"title": "omnihub", "version": "1", "description": "See docs/api.md for websockets and events."},
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "omnihub_session"},
            },
        },
    }
