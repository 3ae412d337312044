"""connectors/registry.py: every kind is registered; a heavy connector is imported only when used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A fresh interpreter: this test process has long imported aiogram through other tests.
PROBE = """
import asyncio, sys
import hub.cli, hub.runtime, hub.supervisor, web.app
from connectors.registry import CONNECTORS

def aiogram() -> bool:
    return any(m.split(".")[0] == "aiogram" for m in sys.modules)

print("at start", aiogram())
print("kinds", sorted(CONNECTORS), "telegram" in CONNECTORS, aiogram())
asyncio.run(CONNECTORS.load("telegram"))
print("after load", aiogram(), CONNECTORS["telegram"].__name__)
"""


def test_aiogram_is_imported_only_when_a_telegram_channel_is_used() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert out.splitlines() == [
        "at start False",
        "kinds ['email', 'telegram', 'vk', 'widget'] True False",
        "after load True TelegramConnector",
    ]
