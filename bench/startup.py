"""`python -m bench.startup`: how long `omnihub serve` takes to answer /healthz, and its idle RSS.

Each run starts `python -m hub serve` as a fresh process against a scratch
database, times spawn → first 200 from /healthz, waits `--settle` seconds and
reads VmRSS from /proc/PID/status, then stops it with SIGTERM. Three setups,
interleaved run by run so a busy machine hurts each alike:

- `no channels`: the hub as installed, with no channel configured;
- `aiogram preloaded`: the same, but `import aiogram` runs first in the same
  process (what every hub paid before aiogram became a lazy import): the
  same-run comparison;
- `one Telegram bot`: a Telegram channel long-polling a local fake Bot API
  (tests/fakes/telegram_api.py); its ready time is spawn → first getUpdates.

`--repo DIR` runs the hub from another checkout (e.g. a `git archive` of an
older commit); given twice, the two checkouts alternate run by run, so a
before/after comparison is measured in one run too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx

from bench.common import (
    ADMIN_URL,
    REPO,
    JSONDict,
    loadavg,
    machine,
    median,
    rss_kib,
    server_version,
    with_database,
    write_result,
)
from tests.fakes.telegram_api import FakeBotAPI

SETUPS = ("no channels", "aiogram preloaded", "one Telegram bot")
PRELOAD = "import aiogram, runpy, sys; sys.argv[0] = 'omnihub'; runpy.run_module('hub', run_name='__main__')"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def hub_env(repo: Path, url: str, data_dir: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        # The checkout under test comes first, before the editable install's finder.
        "PYTHONPATH": str(repo),
        "OMNIHUB_DATABASE_URL": url,
        "OMNIHUB_DATA_DIR": str(data_dir),
        "OMNIHUB_PORT": str(port),
        "OMNIHUB_SECRET": "bench-secret",
    }


async def cli(repo: Path, url: str, data_dir: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", *args,
        env=hub_env(repo, url, data_dir, free_port()), cwd=repo,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"omnihub {' '.join(args)} failed: {out.decode()}")
    return out.decode()


@contextlib.asynccontextmanager
async def database(label: str) -> AsyncIterator[str]:
    name = f"omnihub_bench_startup_{label}_{os.getpid()}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
        yield with_database(ADMIN_URL, name)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def one_run(repo: Path, url: str, setup: str, settle: float, fake: FakeBotAPI | None) -> JSONDict:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="omnihub-bench-startup-") as tmp:
        args = ["-c", PRELOAD, "serve"] if setup == "aiogram preloaded" else ["-m", "hub", "serve"]
        log = Path(tmp) / "hub.log"
        polls_before = len(fake.calls) if fake else 0
        started = time.monotonic()
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, env=hub_env(repo, url, Path(tmp), port), cwd=repo,
                stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        try:
            ready = await healthz(proc, f"http://127.0.0.1:{port}/healthz", log)
            result: JSONDict = {"ready_s": round(ready - started, 3)}
            if fake is not None:
                while not any(m == "getupdates" for m, _ in fake.calls[polls_before:]):
                    if time.monotonic() - started > 120:
                        raise RuntimeError(f"the Telegram channel never polled:\n{read(log)}")
                    await asyncio.sleep(0.02)
                result["polling_s"] = round(time.monotonic() - started, 3)
            result["rss_ready_mib"] = round(rss_kib(proc.pid) / 1024, 1)
            await asyncio.sleep(settle)
            result["rss_idle_mib"] = round(rss_kib(proc.pid) / 1024, 1)
            return result
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def healthz(proc: asyncio.subprocess.Process, url: str, log: Path) -> float:
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the hub exited with {proc.returncode}:\n{read(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return time.monotonic()
            await asyncio.sleep(0.02)


def read(log: Path) -> str:
    return log.read_text(errors="replace")


def summarize(runs: list[JSONDict]) -> JSONDict:
    out: JSONDict = {"runs": len(runs)}
    for key in runs[0]:
        values = [r[key] for r in runs]
        out[key] = {"median": round(median(values), 3), "min": min(values), "max": max(values)}
    return out


def code_of(repo: Path) -> str:
    """The commit a checkout holds: a `git archive` snapshot's COMMIT file, else git's HEAD (+ "dirty")."""
    marker = repo / "COMMIT"
    if marker.exists():
        return marker.read_text().strip() + " (snapshot)"
    git = ["git", "-C", str(repo)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return head + (" + uncommitted changes" if dirty.stdout.strip() else "")


@contextlib.asynccontextmanager
async def prepared(repo: Path, fake: FakeBotAPI, label: str) -> AsyncIterator[dict[str, str]]:
    """Two migrated scratch databases for this checkout: no channel, and one Telegram bot."""
    async with database(f"{label}_plain") as plain_url, database(f"{label}_tg") as tg_url:
        for url in (plain_url, tg_url):
            await cli(repo, url, Path(tempfile.gettempdir()), "migrate")
        await cli(
            repo, tg_url, Path(tempfile.gettempdir()),
            "channel", "add", "telegram", "--name", "bench bot", "--token", fake.token, "--api-base", fake.base_url,
        )  # fmt: skip
        yield {"plain": plain_url, "tg": tg_url}


async def main_async(args: argparse.Namespace, repos: list[Path]) -> None:
    result: JSONDict = {"machine": machine(), "settle_s": args.settle, "repos": {}}
    result["machine"]["postgres"] = await server_version(ADMIN_URL)
    labels = {repo: f"{code_of(repo)} ({repo})" for repo in repos}
    async with FakeBotAPI() as fake, contextlib.AsyncExitStack() as stack:
        urls = {repo: await stack.enter_async_context(prepared(repo, fake, f"r{n}")) for n, repo in enumerate(repos)}
        runs: dict[Path, dict[str, list[JSONDict]]] = {repo: {s: [] for s in SETUPS} for repo in repos}
        for i in range(args.runs):
            for repo in repos:
                for setup in SETUPS:
                    tg = setup == "one Telegram bot"
                    url = urls[repo]["tg" if tg else "plain"]
                    run = await one_run(repo, url, setup, args.settle, fake if tg else None)
                    runs[repo][setup].append(run)
                    print(f"run {i + 1} {labels[repo]} {setup:>18}: {run}", flush=True)
    print(f"\nmedians of {args.runs} runs (load at start {result['machine']['loadavg_start']}, now {loadavg()}):")
    for repo in repos:
        summaries = {s: summarize(r) for s, r in runs[repo].items()}
        result["repos"][labels[repo]] = {s: {"summary": summaries[s], "each": r} for s, r in runs[repo].items()}
        print(labels[repo])
        for setup, summary in summaries.items():
            m = {k: v["median"] for k, v in summary.items() if k != "runs"}
            polling = f", first getUpdates {m['polling_s']} s" if "polling_s" in m else ""
            print(
                f"  {setup:>18}: /healthz {m['ready_s']} s{polling}, "
                f"RSS at ready {m['rss_ready_mib']} MiB, idle {m['rss_idle_mib']} MiB"
            )
    write_result("startup", result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="runs of each setup (default 5)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after ready before the idle RSS reading")
    parser.add_argument(
        "--repo",
        action="append",
        help="checkout whose hub to start; repeat to compare, runs alternate (default: this one)",
    )
    args = parser.parse_args()
    asyncio.run(main_async(args, [Path(r).resolve() for r in args.repo or [REPO]]))


if __name__ == "__main__":
    main()
