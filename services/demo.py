"""Demo data covering every verdict, for `make run` (idempotent: seeding twice changes nothing)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from domain.bulk import Scope
from services.admin import AdminService
from services.scans import ScanAdminService

ALL = Scope("all", None, None, "demo")


def demo_rows(today: date) -> dict[str, Any]:
    yy = today.year % 100
    year_ago = today - timedelta(days=200)
    until = year_ago + timedelta(days=364)
    old_from, old_until = date(today.year - 2, 3, 1), date(today.year - 1, 2, 28)

    def cert(
        number: str,
        holder: str,
        status: str = "valid",
        kind: str = "organic",
        *,
        valid_from: date = year_ago,
        valid_until: date = until,
        body: str = "0123",
    ) -> dict[str, Any]:
        return {
            "number": number,
            "body_code": body,
            "holder": holder,
            "producer": holder,
            "kind": kind,
            "category": "processing",
            "valid_from": valid_from.isoformat(),
            "valid_until": valid_until.isoformat(),
            "status": status,
            "products": [
                {"name": "有机大米", "description": "五常稻花香有机大米 5kg", "certified_tonnes": "120.000"}
            ],
        }

    certs = [
        cert(f"0123OP{yy:02d}00017", "黑龙江示范有机农场有限公司"),
        cert(f"0123OP{yy:02d}00018", "吉林示范米业有限公司（证书已暂停）"),
        cert(f"0123OP{yy:02d}00019", "辽宁示范食品有限公司（证书已撤销）"),
        cert(f"0123OP{yy:02d}00020", "内蒙古示范杂粮合作社（证书已注销）"),
        cert(
            f"0123OP{(yy - 2):02d}00021",
            "山东示范茶业有限公司（证书已过期）",
            valid_from=old_from,
            valid_until=old_until,
        ),
        cert(f"0123OP{yy:02d}00022", "江西示范农业有限公司（转换期）", kind="conversion"),
        cert("123OP1100023", "贵州示范酒业有限公司（17位旧码）", valid_from=year_ago, valid_until=until),
    ]

    def code(
        i: int,
        cert_no: str,
        order: str | None = None,
        issued: date = year_ago + timedelta(days=10),
        prefix: str = "0123",
    ) -> dict[str, Any]:
        year = issued.year % 100
        return {
            "code": f"{prefix}{year:02d}{i:012d}",
            "identity_code": f"{issued.year}{i:05d}",
            "certificate": cert_no,
            "product": "有机大米",
            "issued_on": issued.isoformat(),
            "order": order,
            "package": "5kg 真空袋",
            "label_spec": "25*16mm oval",
        }

    codes = [
        code(100000000001, certs[0]["number"], f"{today:%Y%m%d}-001"),
        code(100000000002, certs[0]["number"], f"{today:%Y%m%d}-001"),
        code(100000000003, certs[0]["number"], f"{today:%Y%m%d}-002"),  # order voided below
        code(100000000004, certs[1]["number"]),
        code(100000000005, certs[2]["number"]),
        code(100000000006, certs[3]["number"]),
        code(100000000007, certs[4]["number"], issued=old_from + timedelta(days=30)),
        code(100000000008, certs[5]["number"]),
        code(100000000009, certs[6]["number"], prefix="123"),
    ]
    batches = [
        {
            "number": f"WCMY{today:%Y%m%d}A",
            "producer": "五常示范米业有限公司",
            "product": "五常大米（稻花香2号）",
            "net_content_kg": "5",
            "codes": [{"a_code": "WCA7Kp2Qx9Lm", "b_code": "WCB3Zt8Rv1Nq"}],
            "trace": {
                "plot": "五常市民乐乡 3 号地块",
                "seed": "五优稻4号",
                "inputs": "有机肥 2 次",
                "inspection": "抽检合格（报告 WC-2026-0917）",
            },
        },
        {
            "number": f"WCMY{today:%Y%m%d}B",
            "producer": "五常示范米业有限公司",
            "product": "五常大米（稻花香2号）",
            "net_content_kg": "5",
            "codes": [{"a_code": "WCA0Unactive1", "b_code": "WCB0Unactive1"}],
            "trace": {"plot": "五常市民乐乡 4 号地块", "seed": "五优稻4号"},
        },
    ]
    return {"certs": certs, "codes": codes, "batches": batches}


def seed(admin: AdminService, today: date, scans: ScanAdminService | None = None) -> dict[str, str]:
    """Load the demo; returns verdict → a code to try. With `scans`, one code also gets the
    scan history of a copied label (five shoppers in five provinces within hours)."""
    rows = demo_rows(today)
    admin.upsert_bodies(
        [
            {
                "code": "0123",
                "legacy_code": "123",
                "name": "示范有机产品认证中心（演示）",
                "approval_number": "CNCA-R-2002-123",
            }
        ],
        ALL,
    )
    admin.upsert_certificates(rows["certs"], ALL)
    admin.import_codes(rows["codes"], ALL)
    for batch in rows["batches"]:
        admin.upsert_batch(batch, ALL)
    admin.activate_batch(rows["batches"][0]["number"], ALL)
    states = {1: "suspended", 2: "revoked", 3: "cancelled"}
    for idx, status in states.items():
        number = rows["certs"][idx]["number"]
        current = admin.registry.certificate(number)
        if current is not None and current.status.value != status:
            admin.change_certificate_status(number, {"status": status, "reason": "演示"}, ALL)
    admin.void_order(f"{today:%Y%m%d}-002", "演示：退订", ALL)
    c = rows["codes"]
    yy = today.year % 100
    copied = c[1]["code"]
    if scans is not None:
        start = datetime.now(UTC) - timedelta(hours=6)
        cities = [(30.27, 120.15), (39.90, 116.40), (23.13, 113.26), (30.57, 104.07), (34.27, 108.95)]
        scans.import_events(
            [
                {
                    "event_id": f"demo-copy-{i}",
                    "code": copied,
                    "at": (start + timedelta(hours=i)).isoformat(),
                    "channel": "qr",
                    "client": f"demo-shopper-{i}",
                    "location": {"lat": lat, "lng": lng},
                }
                for i, (lat, lng) in enumerate(cities)
            ],
            ALL,
        )
    return {
        "genuine": c[0]["code"],
        "suspicious (copied)": copied,
        "voided": c[2]["code"],
        "certificate_suspended": c[3]["code"],
        "certificate_revoked": c[4]["code"],
        "certificate_cancelled": c[5]["code"],
        "certificate_expired": c[6]["code"],
        "conversion_certificate": c[7]["code"],
        "genuine (legacy 17-digit)": c[8]["code"],
        "genuine (BQ A code)": "WCA7Kp2Qx9Lm",
        "genuine (BQ B code)": "WCB3Zt8Rv1Nq",
        "not_activated (BQ)": "WCB0Unactive1",
        "not_found": f"0123{yy:02d}999999999999",
        "invalid_format (future year)": f"0123{(yy + 1) % 100:02d}000000000001",
        "invalid_format (unknown body)": f"7777{yy:02d}000000000001",
    }
