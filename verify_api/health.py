"""Liveness, readiness and per-worker counters."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, jsonify

from domain import metrics
from verify_api.app import container

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    c = container(current_app)
    database = "ok" if c.registry.ping() else "down"
    if c.redis is None:
        cache = "embedded"
    else:
        try:
            cache = "ok" if c.redis.ping() else "down"
        except Exception:
            cache = "down"
    degraded = [name for name, state in (("database", database), ("cache", cache)) if state == "down"]
    # One store down still answers (cached codes, or from the database): stay in rotation.
    status = 503 if len(degraded) == 2 else 200
    return jsonify(
        status="degraded" if degraded else "ready", database=database, cache=cache, degraded=degraded
    ), status


@bp.get("/metrics")
def metrics_view() -> Response:
    """This worker's counters; `pid` tells workers apart so a scraper can sum them."""
    return jsonify(pid=os.getpid(), counters=metrics.snapshot())
