"""A real Dovecot IMAP server for tests: throwaway config, loopback port, one Maildir user.

Runs `/usr/sbin/dovecot -F -c <config>` with plain-text login allowed over
plain TCP (loopback only). As root, Dovecot drops to its own users and the
mail files belong to `nobody`; as any other user everything runs as that user.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import grp
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
mail_privileged_group =
login_trusted_networks =
{capability}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dovecot exited with {proc.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            if s.recv(100).startswith(b"* OK"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"dovecot did not answer on port {port}: {_tail(log)}")


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem); the cert is its own CA."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    found: list[int] = []
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == pid]
        found.extend(kids)
        frontier.extend(kids)
    return found


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


class Dovecot:
    """One Dovecot instance with one user; `start()`, `stop()`, `restart()`, `deliver()`."""

    def __init__(
        self, *, username: str = "support", password: str = "secret", idle: bool = True, tls: bool = False
    ) -> None:
        """`tls=True`: STARTTLS on `port`, implicit TLS on `tls_port`, certificate `self.cert` (also the CA)."""
        self.username = username
        self.password = password
        self.idle = idle
        self.tls = tls
        # Not pytest's tmp_path: as root, Dovecot's unprivileged processes must traverse it.
        self.root = Path(tempfile.mkdtemp(prefix="omnihub-dovecot-"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.host = "127.0.0.1"
        self.cert: Path | None = None
        self.key: Path | None = None
        if tls:
            self.cert, self.key = make_certificate(self.root)
        self.proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            self._internal_user, self._login_user = "dovecot", "dovenull"
            self._internal_group = grp.getgrgid(pwd.getpwnam("dovecot").pw_gid).gr_name
            self._mail_uid, self._mail_gid = pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid
        else:
            me = pwd.getpwuid(os.geteuid())
            self._internal_user = self._login_user = me.pw_name
            self._internal_group = grp.getgrgid(me.pw_gid).gr_name
            self._mail_uid, self._mail_gid = me.pw_uid, me.pw_gid
        self.home = self.root / "home"
        self._write_config()

    @property
    def log(self) -> Path:
        return self.root / "dovecot.log"

    def _write_config(self) -> None:
        for d in ("run", "state", "home"):
            (self.root / d).mkdir(exist_ok=True)
        os.chown(self.home, self._mail_uid, self._mail_gid)
        (self.root / "passwd").write_text(
            f"{self.username}:{{PLAIN}}{self.password}:{self._mail_uid}:{self._mail_gid}::{self.home}::\n"
        )
        capability = (
            "" if self.idle else "imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE UIDPLUS"
        )
        (self.root / "dovecot.conf").write_text(
            CONFIG.format(
                root=self.root,
                port=self.port,
                internal_user=self._internal_user,
                internal_group=self._internal_group,
                login_user=self._login_user,
                capability=capability,
                tls_port=self.tls_port,
                ssl=f"ssl = yes\nssl_cert = <{self.cert}\nssl_key = <{self.key}" if self.tls else "ssl = no",
            )
        )

    def start(self) -> None:
        assert self.proc is None, "already running"
        with open(self.root / "stderr.log", "ab") as stderr:
            self.proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")], stdout=subprocess.DEVNULL, stderr=stderr
            )
        _wait_port(self.port, 10, self.proc, self.root / "stderr.log")

    def stop(self) -> None:
        """Stop the server; clients see their connections dropped."""
        if self.proc is None:
            return
        # Dovecot's imap and log processes outlive a stopped master: kill them too,
        # so connected clients really see the connection drop.
        children = _descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Dovecot's children (imap processes) exit with the master; wait for the port to close.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                break
            time.sleep(0.05)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def reset_uids(self) -> None:
        """Forget the mailbox's UID list and indexes (server stopped): the next start picks a new UIDVALIDITY."""
        assert self.proc is None, "stop the server first"
        for f in (self.home / "Maildir").rglob("dovecot*"):
            if f.is_file():
                f.unlink()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @contextlib.contextmanager
    def client(self) -> Iterator[imaplib.IMAP4]:
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            imap.login(self.username, self.password)
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def deliver(self, raw: bytes, *, date: dt.datetime | None = None, mailbox: str = "INBOX") -> None:
        """Put one mail into the mailbox with IMAP APPEND (INTERNALDATE = `date`, default now)."""
        self.deliver_many([raw], date=date, mailbox=mailbox)

    def deliver_many(self, raws: list[bytes], *, date: dt.datetime | None = None, mailbox: str = "INBOX") -> None:
        when = date or dt.datetime.now(dt.UTC)
        with self.client() as imap:
            for raw in raws:
                typ, data = imap.append(mailbox, "", imaplib.Time2Internaldate(when), raw)
                if typ != "OK":
                    raise RuntimeError(f"APPEND failed: {data!r}")

    def uids(self, mailbox: str = "INBOX") -> list[int]:
        with self.client() as imap:
            imap.select(mailbox)
            typ, data = imap.uid("SEARCH", "ALL")
            assert typ == "OK", data
            return [int(u) for u in data[0].split()]

    def uidvalidity(self, mailbox: str = "INBOX") -> int:
        with self.client() as imap:
            typ, data = imap.status(mailbox, "(UIDVALIDITY)")
            assert typ == "OK", data
            text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
            return int(text.rsplit("UIDVALIDITY", 1)[1].strip(" )"))
