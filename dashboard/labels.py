"""Words for the values the pages show (rules, severities, statuses, roles, scopes), in the
page's language, and China time for people."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l

from domain.china_time import china_minute, parse_instant

RULES: dict[str, Any] = {
    "distinct_scanners": _l("Many scanners"),
    "impossible_travel": _l("Impossible travel"),
    "province_spread": _l("Many provinces"),
    "velocity": _l("Scan burst"),
    "shopper_report": _l("Shopper report"),
    "over_quantity": _l("Over quantity"),
    "off_market": _l("Outside sales region"),
    "not_in_use": _l("Scanned before use"),
    "identity_mismatch": _l("Identity code mismatch"),
}
SEVERITIES: dict[str, Any] = {"warn": _l("Warning"), "suspicious": _l("Suspicious")}
STATUSES: dict[str, Any] = {"open": _l("Open"), "confirmed": _l("Confirmed"), "dismissed": _l("Dismissed")}
ROLES: dict[str, Any] = {"viewer": _l("Viewer"), "analyst": _l("Analyst"), "admin": _l("Admin")}
SCOPES: dict[str, Any] = {
    "all": _l("Everything"),
    "body": _l("Certification body"),
    "organization": _l("Organization"),
}
CHANNELS: dict[str, Any] = {
    "qr": _l("QR code"),
    "manual": _l("Typed"),
    "photo": _l("Photo"),
    "web": _l("Web"),
    "api": _l("Imported"),
    "wechat": _l("WeChat"),
}
VERDICTS: dict[str, Any] = {
    "genuine": _l("Genuine"),
    "not_found": _l("Not found"),
    "invalid_format": _l("Invalid format"),
    "voided": _l("Voided"),
    "not_activated": _l("Not activated"),
    "certificate_suspended": _l("Certificate suspended"),
    "certificate_revoked": _l("Certificate revoked"),
    "certificate_cancelled": _l("Certificate cancelled"),
    "certificate_expired": _l("Certificate expired"),
    "conversion_certificate": _l("Conversion certificate"),
    "suspicious": _l("Suspicious"),
}
CERTIFICATE_STATUSES: dict[str, Any] = {
    "valid": _l("Valid"),
    "suspended": _l("Suspended"),
    "revoked": _l("Revoked"),
    "cancelled": _l("Cancelled"),
    "expired": _l("Expired"),
}
PLACE_FROM: dict[str, Any] = {
    "wechat": _l("WeChat-verified place"),
    "gps": _l("Claimed coordinates"),
    "ip": _l("Network's city"),
}
# The measured values a rule puts in a flag's evidence (anomaly/rules.py).
EVIDENCE: dict[str, Any] = {
    "distinct_scanners": _l("Distinct scanners"),
    "distinct_networks": _l("Distinct networks"),
    "scanners": _l("Scanners"),
    "networks": _l("Networks"),
    "provinces": _l("Provinces"),
    "window_days": _l("Window (days)"),
    "window": _l("Window"),
    "limit": _l("Limit"),
    "km": _l("Distance (km)"),
    "km_per_hour": _l("Speed (km/h)"),
    "weight": _l("Weight"),
    "seen_tonnes": _l("Tonnes seen on shelves"),
    "certified_tonnes": _l("Certified tonnes"),
    "per_package_kg": _l("Per package (kg)"),
    "distinct_codes": _l("Distinct codes"),
    "declared": _l("Declared sales region"),
    "province": _l("Province"),
    "city": _l("City"),
}
ACTIONS: dict[str, Any] = {
    "flag.review": _l("Flag reviewed"),
    "user.create": _l("Account created"),
    "user.invite": _l("Account invited"),
    "user.disable": _l("Account disabled"),
    "user.enable": _l("Account enabled"),
    "user.password_reset": _l("Password reset by the operator"),
    "webhook.create": _l("Webhook added"),
    "webhook.update": _l("Webhook changed"),
    "webhook.delete": _l("Webhook deleted"),
    "spec.save": _l("Product spec saved"),
    "spec.photo": _l("Product spec photo added"),
    "order.create": _l("Label order created"),
    "order.edit": _l("Label order edited"),
    "order.submit": _l("Label order submitted"),
    "order.review": _l("Label order reviewed"),
    "order.allocate": _l("Label order allocated"),
    "order.printer_codes": _l("Printer codes imported"),
    "order.printer_file": _l("Printer's code file downloaded"),
    "order.losses": _l("Printing losses recorded"),
    "order.attachment": _l("Order attachment added"),
    "order.use": _l("Labels taken into use"),
    "order.use_rollback": _l("Use record rolled back"),
    "order.void": _l("Label order voided"),
}
# Label orders (issue 17; seed 000's words).
ORDER_STATUSES: dict[str, Any] = {
    "new": _l("New"),
    "auto_approved": _l("Auto-approved"),
    "auto_rejected": _l("Auto-rejected"),
    "manually_approved": _l("Approved"),
    "manually_rejected": _l("Rejected"),
    "allocated": _l("Allocated"),
    # Not the verdict's "Voided" (已作废): the order's stage is seed 000's 已退订.
    "voided": _l("Voided order"),
}
CODES_FROM: dict[str, Any] = {"generated": _l("Generated here"), "printer": _l("From the printer")}
APPLICATIONS: dict[str, Any] = {"affix": _l("Affixed labels"), "print": _l("Printed on the package")}


def china_time(value: datetime | str | None) -> str:
    """China time to the minute, from a datetime or an ISO-8601 instant; '' for none."""
    if isinstance(value, str):
        value = parse_instant(value)
    return china_minute(value) or ""


def register(app_or_bp: Any) -> None:
    """Template filters and globals the dashboard's pages use."""
    app_or_bp.add_app_template_filter(china_time, "china_time")
    app_or_bp.add_app_template_global(
        {
            "rules": RULES,
            "severities": SEVERITIES,
            "statuses": STATUSES,
            "roles": ROLES,
            "scopes": SCOPES,
            "channels": CHANNELS,
            "actions": ACTIONS,
            "verdicts": VERDICTS,
            "certificate_statuses": CERTIFICATE_STATUSES,
            "place_from": PLACE_FROM,
            "evidence": EVIDENCE,
            "order_statuses": ORDER_STATUSES,
            "codes_from": CODES_FROM,
            "applications": APPLICATIONS,
        },
        "labels",
    )
