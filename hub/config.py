"""Configuration from environment variables and an optional `omnihub.toml`."""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from hub.errors import ConfigError

DEFAULT_MAX_ATTACHMENT = 20 * 1024 * 1024


@dataclass(frozen=True)
class Config:
    database_url: str | None  # None: start the embedded PostgreSQL
    data_dir: Path
    host: str
    port: int
    secret: str
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT
    public_url: str = ""  # how browsers reach us; defaults to http://host:port

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


def _file_settings(path: Path) -> dict[str, object]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


def load_config(env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ if env is None else env)
    data_dir = Path(env.get("OMNIHUB_DATA_DIR", "./.omnihub")).resolve()
    toml = _file_settings(Path(env.get("OMNIHUB_CONFIG", "omnihub.toml")))

    def get(name: str, default: str = "") -> str:
        value = env.get(f"OMNIHUB_{name.upper()}")
        if value is None:
            value = str(toml.get(name, default))
        return value

    port_text = get("port", "8000")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"OMNIHUB_PORT must be a number, not {port_text!r}") from None
    max_att_text = get("max_attachment_bytes", str(DEFAULT_MAX_ATTACHMENT))
    try:
        max_att = int(max_att_text)
    except ValueError:
        raise ConfigError(f"OMNIHUB_MAX_ATTACHMENT_BYTES must be a number, not {max_att_text!r}") from None
    return Config(
        database_url=get("database_url") or None,
        data_dir=data_dir,
        host=get("host", "127.0.0.1"),
        port=port,
        secret=get("secret") or _stored_secret(data_dir),
        max_attachment_bytes=max_att,
        public_url=get("public_url").rstrip("/"),
    )


def _stored_secret(data_dir: Path) -> str:
    """The signing secret, generated once into the data dir so restarts keep sessions valid."""
    path = data_dir / "secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value
