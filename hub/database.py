"""Which PostgreSQL to use: the configured one, or the embedded one started on demand."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from hub.config import Config
from hub.embedded import EmbeddedPostgres


@contextlib.contextmanager
def database_url(config: Config) -> Iterator[str]:
    if config.database_url:
        yield config.database_url
        return
    embedded = EmbeddedPostgres(config.data_dir)
    url = embedded.start()
    try:
        yield url
    finally:
        embedded.stop()
