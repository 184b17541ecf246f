"""A writer process for CLI bulk imports: LOAD DATA and cache propagation run in their own
process, so the importer's validation and the writes overlap on two cores instead of
taking turns on one GIL (pymysql sends LOCAL INFILE data in 16 KB packets, each one
waiting for the GIL while the parser holds it)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from typing import Any

from verify_api.settings import Settings

_admin: Any = None


def _init(settings: Settings) -> None:
    global _admin  # noqa: PLW0603 - one service per writer process, built once
    from verify_api.app import build

    _admin = build(settings.with_(migrate_on_start=False)).admin


def write(out: list[tuple[int, int, date | None, str | None]], codes: list[str]) -> None:
    _admin.write_chunk(out, codes, use_file=True)


def writer_process(settings: Settings, processes: int = 2) -> ProcessPoolExecutor:
    # spawn, not fork: the parent holds open database and Redis connections.
    return ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init,
        initargs=(settings,),
    )
