"""The `omnihub` command as an administrator runs it: real processes, real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def omnihub(database_url: str, *args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMNIHUB_DATABASE_URL": database_url}
    if data_dir:
        env["OMNIHUB_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "hub", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=180
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_every_command_has_help(database_url: str) -> None:
    for args in (["--help"], ["serve", "--help"], ["migrate", "--help"], ["agent", "add", "--help"],
                 ["channel", "list", "--help"], ["channel", "add", "telegram", "--help"], ["channel", "add", "vk", "--help"],
                 ["channel", "add", "email", "--help"], ["channel", "add", "widget", "--help"]):
        r = omnihub(database_url, *args)
        assert r.returncode == 0 and "usage: omnihub" in r.stdout, (args, r.stderr)


def test_agents_and_widget_channel(database_url: str, tmp_path: Path) -> None:
    r = omnihub(database_url, "migrate")
    assert r.returncode == 0 and "up to date" in r.stdout  # the test database is migrated already
    r = omnihub(database_url, "agent", "add", "--email", "olga@example.com", "--name", "Olga", "--role", "manager", "--password", "s3cret-pass")
    assert r.returncode == 0 and "added manager Olga" in r.stdout, r.stderr
    dup = omnihub(database_url, "agent", "add", "--email", "OLGA@example.com", "--name", "O", "--role", "agent", "--password", "s3cret-pass")
    assert "exists already" in one_line_error(dup)
    short = omnihub(database_url, "agent", "add", "--email", "x@example.com", "--name", "X", "--role", "agent", "--password", "123")
    assert "at least 8" in one_line_error(short)

    r = omnihub(database_url, "channel", "add", "widget", "--name", "Site", "--origin", "https://shop.example/", data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert '<script src="http://127.0.0.1:8000/widget.js" data-channel="1" async></script>' in r.stdout
    dup = omnihub(database_url, "channel", "add", "widget", "--name", "Site")
    assert "exists already" in one_line_error(dup)
    r = omnihub(database_url, "channel", "list")
    assert r.returncode == 0 and "widget" in r.stdout and "Site" in r.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["channel", "add", "fax", "--name", "x"], "invalid choice: 'fax'"),
        (["agent", "add", "--email", "a@b.c"], "required"),
        (["agent", "add", "--email", "a@b.c", "--name", "A", "--role", "boss", "--password", "12345678"], "invalid choice: 'boss'"),
        (["serve", "--port", "eighty"], "invalid int value"),
    ],
)
def test_wrong_calls_say_what_is_wrong(database_url: str, args: list[str], words: str) -> None:
    line = one_line_error(omnihub(database_url, *args))
    assert words in line and "--help" in line


def test_unreachable_database_is_one_line() -> None:
    r = omnihub("postgresql://nobody@127.0.0.1:1/nothing", "migrate")
    line = one_line_error(r)
    assert "cannot connect to the database" in line and "OMNIHUB_DATABASE_URL" in line
