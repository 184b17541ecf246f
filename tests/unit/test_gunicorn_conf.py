"""gunicorn.conf.py serves our app and, in the bench, the reference floor app beside it."""

from __future__ import annotations

import gc
import runpy
from pathlib import Path
from types import SimpleNamespace

from flask import Flask

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_of_an_app_that_is_not_ours_boots_without_warming() -> None:
    # The bench starts bench/floor_app.py under the same config so both run alike; its
    # workers died in post_worker_init when warming looked for our container.
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    floor = Flask("floor")
    try:
        conf["post_worker_init"](SimpleNamespace(wsgi=floor))
    finally:
        gc.unfreeze()
    assert "container" not in floor.extensions


def test_a_worker_freezes_what_it_built_to_serve_out_of_the_collectors_walks() -> None:
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    try:
        conf["post_worker_init"](SimpleNamespace(wsgi=Flask("floor")))
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()  # this test process goes on collecting as before
    assert frozen > 1000
