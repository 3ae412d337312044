"""Agents, their passwords (argon2) and login sessions."""

from __future__ import annotations

import hashlib
import secrets

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.errors import Conflict, OmnihubError
from hub.types import JSON, ROLES

SESSION_DAYS = 30
_hasher = PasswordHasher()


def agent_json(r: asyncpg.Record) -> JSON:
    return {"id": r["id"], "email": r["email"], "name": r["name"], "role": r["role"]}


async def add_agent(pool: asyncpg.Pool | asyncpg.Connection, *, email: str, name: str, role: str, password: str) -> JSON:
    if role not in ROLES:
        raise OmnihubError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if "@" not in email:
        raise OmnihubError(f"{email!r} is not an e-mail address")
    if len(password) < 8:
        raise OmnihubError("the password must be at least 8 characters")
    try:
        row = await pool.fetchrow(
            "INSERT INTO agents (email, name, role, password_hash) VALUES ($1, $2, $3, $4)"
            " RETURNING id, email, name, role",
            email.strip(),
            name.strip(),
            role,
            _hasher.hash(password),
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"an agent with e-mail {email} exists already") from None
    return agent_json(row)


async def list_agents(pool: asyncpg.Pool) -> list[JSON]:
    rows = await pool.fetch("SELECT id, email, name, role FROM agents WHERE NOT disabled ORDER BY name, id")
    return [agent_json(r) for r in rows]


async def authenticate(pool: asyncpg.Pool, email: str, password: str) -> JSON | None:
    row = await pool.fetchrow(
        "SELECT id, email, name, role, password_hash FROM agents WHERE lower(email) = lower($1) AND NOT disabled",
        email.strip(),
    )
    if row is None:
        _hasher.hash(password)  # same work either way: don't tell who exists by timing
        return None
    try:
        _hasher.verify(row["password_hash"], password)
    except (VerificationError, InvalidHashError):
        return None
    return agent_json(row)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_session(pool: asyncpg.Pool, agent_id: int) -> str:
    token = secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO sessions (token_hash, agent_id, expires_at) VALUES ($1, $2, now() + make_interval(days => $3))",
        _token_hash(token),
        agent_id,
        SESSION_DAYS,
    )
    return token


async def agent_for_token(pool: asyncpg.Pool, token: str) -> JSON | None:
    row = await pool.fetchrow(
        "SELECT a.id, a.email, a.name, a.role FROM sessions s JOIN agents a ON a.id = s.agent_id"
        " WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT a.disabled",
        _token_hash(token),
    )
    return agent_json(row) if row else None


async def end_session(pool: asyncpg.Pool, token: str) -> None:
    await pool.execute("DELETE FROM sessions WHERE token_hash = $1", _token_hash(token))


async def ensure_agent(pool: asyncpg.Pool, *, email: str, name: str, role: str, password: str) -> None:
    """Create the agent, or reset the password and re-enable an existing one (the demo login)."""
    await pool.execute(
        "INSERT INTO agents (email, name, role, password_hash) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (lower(email)) DO UPDATE SET password_hash = EXCLUDED.password_hash, disabled = false",
        email,
        name,
        role,
        _hasher.hash(password),
    )
