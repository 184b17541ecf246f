"""Liveness, readiness and per-worker counters."""

from __future__ import annotations

import os

from flask import Blueprint, Response, jsonify

from domain import metrics
from verify_api.context import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    c = services()
    found = c.readiness()
    database, cache, scans = found["database"], found["cache"], found["scan_store"]
    states = (("database", database), ("cache", cache), ("scan_store", scans))
    degraded = [name for name, state in states if state == "down"]
    # A store down still answers (cached codes, or from the database; scans are an
    # addition to the answer): stay in rotation unless neither database nor cache is up.
    status = 503 if {"database", "cache"} <= set(degraded) else 200
    return jsonify(
        status="degraded" if degraded else "ready",
        database=database,
        cache=cache,
        scan_store=scans,
        degraded=degraded,
        # A photo of a digits-only label needs the OCR engine; without it only QR codes read.
        engines=c.engines(),
    ), status


@bp.get("/metrics")
def metrics_view() -> Response:
    """This worker's counters; `pid` tells workers apart so a scraper can sum them."""
    return jsonify(pid=os.getpid(), counters=metrics.snapshot())
