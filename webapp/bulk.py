"""A writer process for CLI bulk imports: LOAD DATA and cache propagation run in their own
process, so the importer's validation and the writes overlap on two cores instead of
taking turns on one GIL (pymysql sends LOCAL INFILE data in 16 KB packets, each one
waiting for the GIL while the parser holds it)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from typing import Any

from services.admin import OneGroup
from webapp.settings import Settings

_admin: Any = None


def _init(settings: Settings) -> None:
    global _admin  # noqa: PLW0603 - one service per writer process, built once
    from webapp.wiring import Container

    # The admin service alone: its registry, record cache and writer caches. No scan store,
    # no replay of scan events, no scanner, no blueprints (build() used to make them all).
    _admin = Container(settings).admin


def write(out: list[tuple[int, int, date | None, str | None]] | OneGroup, codes: list[str]) -> None:
    _admin.write_chunk(out, codes, use_file=True)


def writer_process(settings: Settings, processes: int = 2) -> ProcessPoolExecutor:
    # fork: a writer starts from the modules this process has already imported; spawned,
    # each imported the app again (~0.6 s of CPU each, taken from the parser of the first
    # chunk on two cores). The parent's open database and Redis connections are inherited
    # but never used: `_init` builds the writer's own, and a forked child leaves through
    # os._exit, so nothing closes the parent's connections on its way out.
    return ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_init,
        initargs=(settings,),
    )
