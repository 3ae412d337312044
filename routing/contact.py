"""Contact cadence: "a VIP hears from us every two weeks".

A rule names a segment (matched against the client's segment or tags) and a
number of days. A client is due for contact when nobody has written to them
(an outbound message on any of their conversations) for that many days, or
ever, counting from when their card was created.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.errors import Conflict, NotFound, OmnihubError
from hub.types import JSON


def rule_json(r: asyncpg.Record) -> JSON:
    return {"id": r["id"], "segment": r["segment"], "every_days": r["every_days"], "created_at": r["created_at"].isoformat()}


async def list_rules(pool: asyncpg.Pool) -> list[JSON]:
    return [rule_json(r) for r in await pool.fetch("SELECT * FROM contact_rules ORDER BY segment")]


async def create_rule(pool: asyncpg.Pool, body: dict[str, Any]) -> JSON:
    segment, days = body.get("segment"), body.get("every_days")
    if not isinstance(segment, str) or not segment.strip():
        raise OmnihubError("segment must be a non-empty string")
    if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
        raise OmnihubError("every_days must be a positive whole number")
    try:
        row = await pool.fetchrow(
            "INSERT INTO contact_rules (segment, every_days) VALUES ($1, $2) RETURNING *", segment.strip(), days
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"segment {segment!r} has a contact rule already") from None
    return rule_json(row)


async def delete_rule(pool: asyncpg.Pool, rule_id: int) -> None:
    if await pool.fetchval("DELETE FROM contact_rules WHERE id = $1 RETURNING id", rule_id) is None:
        raise NotFound(f"contact rule {rule_id} does not exist")


async def due_for_contact(
    pool: asyncpg.Pool, *, segment: str | None = None, days: int | None = None, limit: int = 50, after: int = 0
) -> list[JSON]:
    """Clients due for contact (by client id, for paging): under the stored rules, or an ad-hoc segment + days."""
    if days is not None and (segment is None or days <= 0):
        raise OmnihubError("days needs a segment, and must be positive")
    rules: list[dict[str, Any]]
    if days is not None:
        rules = [{"id": None, "segment": segment, "every_days": days}]
    else:
        rules = [dict(r) for r in await pool.fetch("SELECT id, segment, every_days FROM contact_rules ORDER BY id")]
        if segment is not None:
            rules = [r for r in rules if r["segment"].lower() == segment.lower()]
    if not rules:
        return []
    rows = await pool.fetch(
        "WITH rules AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[]) AS r(rule_id, segment, every_days)),"
        " matched AS ("
        "  SELECT DISTINCT ON (cl.id) cl.id, cl.name, cl.email, cl.phone, cl.segment, cl.tags, cl.created_at,"
        "   r.rule_id, r.segment AS rule_segment, r.every_days"
        "  FROM clients cl JOIN rules r ON lower(cl.segment) = lower(r.segment)"
        "   OR lower(r.segment) IN (SELECT lower(t) FROM unnest(cl.tags) t)"
        "  WHERE cl.merged_into IS NULL ORDER BY cl.id, r.every_days)"
        " SELECT m.*, lc.at AS last_contact_at,"
        "  coalesce(lc.at, m.created_at) + make_interval(days => m.every_days) AS due_at"
        " FROM matched m LEFT JOIN LATERAL ("
        "  SELECT max(msg.created_at) AS at FROM conversations c JOIN messages msg ON msg.conversation_id = c.id"
        "  WHERE c.client_id = m.id AND msg.direction = 'out') lc ON true"
        " WHERE coalesce(lc.at, m.created_at) + make_interval(days => m.every_days) <= now() AND m.id > $4"
        " ORDER BY m.id LIMIT $5",
        [r["id"] for r in rules],
        [r["segment"] for r in rules],
        [r["every_days"] for r in rules],
        after,
        limit,
    )
    return [
        {
            "client": {
                "id": r["id"], "name": r["name"], "email": r["email"], "phone": r["phone"], "segment": r["segment"],
                "tags": list(r["tags"]), "created_at": r["created_at"].isoformat(),
            },
            "rule": {"id": r["rule_id"], "segment": r["rule_segment"], "every_days": r["every_days"]},
            "last_contact_at": r["last_contact_at"].isoformat() if r["last_contact_at"] else None,
            "due_at": r["due_at"].isoformat(),
        }
        for r in rows
    ]
