"""The Overview page (issue 16, item 2): for the signed-in account's scope and a chosen
period, scans per day by verdict, flags opened per day by rule, a China map of scans and
suspicious scans by province and city, the certificates and products with the most flags,
and the over-quantity gauge. Everything comes from services.overview (aggregate tables);
the page carries its numbers as one JSON block that dashboard/static/overview.js draws
with the vendored ECharts and China map (dashboard/static/vendor/)."""

from __future__ import annotations

import functools
from typing import Any

from flask import abort, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from dashboard import nav
from dashboard.auth import current_scope, require_role
from dashboard.blueprint import bp
from dashboard.chinamap import china_geojson
from dashboard.context import services
from dashboard.labels import RULES, VERDICTS
from domain.accounts import Role
from domain.errors import BadInput
from domain.overview import PERIOD_DAYS, Overview, Ranked

# After the flag queue (order 20), which stays where signing in lands.
nav.add("dashboard.overview", _l("Overview"), Role.VIEWER, order=25)

# A colour per verdict, fixed so a verdict looks the same in every period and scope:
# genuine green, suspicious red, the registry's refusals in ambers and greys.
VERDICT_COLOURS = {
    "genuine": "#2e8b57",
    "suspicious": "#c62828",
    "not_found": "#8d6e63",
    "invalid_format": "#9e9e9e",
    "voided": "#6d4c41",
    "not_activated": "#5c6bc0",
    "certificate_suspended": "#ef6c00",
    "certificate_revoked": "#ad1457",
    "certificate_cancelled": "#7b1fa2",
    "certificate_expired": "#f9a825",
    "conversion_certificate": "#00897b",
}

# And one per flag rule.
RULE_COLOURS = {
    "distinct_scanners": "#c62828",
    "impossible_travel": "#ef6c00",
    "province_spread": "#6a1b9a",
    "velocity": "#1565c0",
    "shopper_report": "#2e7d32",
    "over_quantity": "#ad1457",
    "off_market": "#00838f",
    "not_in_use": "#6d4c41",
    "identity_mismatch": "#c62828",
}

MAP_CITIES = 80  # the busiest cities drawn as points; every province is coloured


@functools.cache
def _map_names() -> dict[str, str]:
    """The map's short province names -> the full names scans carry (ECharts' nameMap)."""
    return {f["properties"]["name"]: f["properties"]["full_name"] for f in china_geojson()["features"]}


def _ranked(rows: list[Ranked]) -> list[dict[str, Any]]:
    return [{"name": r.name, "detail": r.detail, "flags": r.flags} for r in rows]


def chart_data(view: Overview, rule_labels: dict[str, Any]) -> dict[str, Any]:
    """The page's numbers and words as one JSON-able block for overview.js."""
    map_url = url_for("dashboard.static", filename="vendor/china-map/china.json")
    return {
        "days": [d.strftime("%m-%d") for d in view.days],
        "scans": [
            {"key": k, "name": str(VERDICTS.get(k, k)), "colour": VERDICT_COLOURS.get(k), "data": v}
            for k, v in view.scans_by_verdict.items()
        ],
        "flags": [
            {"key": k, "name": str(rule_labels.get(k, k)), "colour": RULE_COLOURS.get(k), "data": v}
            for k, v in view.flags_by_rule.items()
        ],
        "provinces": [
            {"name": p.province, "scans": p.scans, "suspicious": p.suspicious} for p in view.provinces
        ],
        "cities": [
            {
                "name": p.city,
                "province": p.province,
                "value": [*view.points[(p.province, p.city)], p.scans, p.suspicious],
            }
            for p in view.cities
            if (p.province, p.city) in view.points
        ][:MAP_CITIES],
        "top_certificates": [
            {"name": r.name, "detail": r.detail, "flags": r.flags} for r in view.top_certificates
        ],
        "top_products": [{"name": r.name, "detail": r.detail, "flags": r.flags} for r in view.top_products],
        "gauge": [
            {
                "product": g.product,
                "certificate": g.certificate,
                "codes": g.codes,
                "seen": g.seen_tonnes,
                "certified": g.certified_tonnes,
                "ratio": round(g.ratio, 4) if g.ratio is not None else None,
            }
            for g in view.gauge
        ],
        "map": {"url": map_url, "names": _map_names()},
        "words": {
            "scans": _("Scans"),
            "suspicious": _("Suspicious scans"),
            "flags": _("Flags opened"),
            "no_data": _("Nothing in this period"),
            "seen": _("Seen on shelves"),
            "certified": _("Certified"),
            "tonnes": _("t"),
            "codes": _("codes"),
        },
    }


@bp.get("/overview")
@require_role(Role.VIEWER)
def overview() -> str:
    service = services().overview
    try:
        period = service.period(request.args.get("days"))
    except BadInput:
        abort(400)
    view = service.overview(current_scope(), period)
    return render_template(
        "dashboard/overview.html",
        view=view,
        data=chart_data(view, RULES),
        periods=PERIOD_DAYS,
    )
