"""Demo data covering every verdict, for `make run` (idempotent: seeding twice changes nothing).

A concern of the composition root: `flask --app wsgi seed-demo` (webapp/cli.py) loads it
through the admin and scan use cases, as an operator would; tests and benchmarks seed with it
too."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from domain.bulk import Scope
from domain.errors import Conflict
from registry.grain import SqlGrain
from registry.store import SqlRegistry
from services.accounts import AccountService
from services.admin import AdminService
from services.grain import GrainService
from services.scans import ScanAdminService

ALL = Scope("all", None, None, "demo")
# The demo batch's inspection report: a one-page PDF (the bytes a PDF starts with, and a
# line of text; enough for the sniffer and a download).
DEMO_REPORT = b"%PDF-1.4\n% demo inspection report\n%%EOF\n"
_REASONS = {
    "suspended": "监督抽查不合格，责令整改",
    "revoked": "超范围使用有机标志",
    "cancelled": "获证组织申请注销",
}


# Each certificate holder with what it plausibly grows or makes (name, description,
# certified tonnes), the package and the label printed for it. Status notes are not part
# of any name: the certificate's status says it.
_HOLDERS: dict[str, tuple[str, str, str, str, str, str]] = {
    # number suffix: (holder, product, description, tonnes, package, label spec)
    "00017": (
        "黑龙江龙泉有机农业有限公司",
        "有机大米",
        "五常稻花香2号有机大米",
        "120.000",
        "5千克真空包装",
        "25×16毫米椭圆形",
    ),
    "00018": (
        "吉林松原绿野米业有限公司",
        "有机小米",
        "松原黄小米，当季新米",
        "40.000",
        "2.5千克编织袋",
        "25×16毫米椭圆形",
    ),
    "00019": (
        "辽宁盘锦鑫田食品有限公司",
        "有机大米",
        "盘锦蟹田大米",
        "80.000",
        "10千克编织袋",
        "直径20毫米圆形",
    ),
    "00020": (
        "内蒙古赤峰塞北杂粮专业合作社",
        "有机荞麦",
        "赤峰敖汉旗荞麦米",
        "25.000",
        "1千克纸盒",
        "直径15毫米圆形",
    ),
    "00021": (
        "山东日照青山茶业有限公司",
        "有机绿茶",
        "日照绿茶，春茶一级",
        "3.000",
        "250克铁罐",
        "直径15毫米圆形",
    ),
    "00022": (
        "江西婺源源头茶叶专业合作社",
        "绿茶",
        "婺源绿茶（有机转换期）",
        "5.000",
        "100克纸盒",
        "直径15毫米圆形",
    ),
    "00023": (
        "贵州仁怀赤水河高粱种植有限公司",
        "有机高粱",
        "红缨子糯高粱，酿酒原料",
        "300.000",
        "25千克编织袋",
        "30×20毫米椭圆形",
    ),
}


def demo_rows(today: date) -> dict[str, Any]:
    yy = today.year % 100
    year_ago = today - timedelta(days=200)
    until = year_ago + timedelta(days=364)
    old_from, old_until = date(today.year - 2, 3, 1), date(today.year - 1, 2, 28)

    def cert(
        number: str,
        status: str = "valid",
        kind: str = "organic",
        *,
        valid_from: date = year_ago,
        valid_until: date = until,
        body: str = "0123",
    ) -> dict[str, Any]:
        holder, product, description, tonnes, _, _ = _HOLDERS[number[-5:]]
        return {
            "number": number,
            "body_code": body,
            "holder": holder,
            "producer": holder,
            "kind": kind,
            "category": "processing" if product in ("有机绿茶", "绿茶") else "crop",
            "valid_from": valid_from.isoformat(),
            "valid_until": valid_until.isoformat(),
            "status": status,
            "products": [{"name": product, "description": description, "certified_tonnes": tonnes}],
        }

    certs = [
        cert(f"0123OP{yy:02d}00017"),
        cert(f"0123OP{yy:02d}00018"),  # suspended below
        cert(f"0123OP{yy:02d}00019"),  # revoked below
        cert(f"0123OP{yy:02d}00020"),  # cancelled below
        cert(f"0123OP{(yy - 2):02d}00021", valid_from=old_from, valid_until=old_until),  # expired
        cert(f"0123OP{yy:02d}00022", kind="conversion"),
        cert("123OP1100023", valid_from=year_ago, valid_until=until),  # a 17-digit legacy label
    ]

    def code(
        i: int,
        cert_no: str,
        order: str | None = None,
        issued: date = year_ago + timedelta(days=10),
        prefix: str = "0123",
    ) -> dict[str, Any]:
        year = issued.year % 100
        _, product, _, _, package, label_spec = _HOLDERS[cert_no[-5:]]
        return {
            "code": f"{prefix}{year:02d}{i:012d}",
            # The label's 9-digit identity code (身份码), sequential from 100000001.
            "identity_code": f"{100_000_000 + i % 100_000_000:09d}",
            "certificate": cert_no,
            "product": product,
            "issued_on": issued.isoformat(),
            "order": order,
            "package": package,
            "label_spec": label_spec,
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
            "producer": "五常市民乐乡稻花香米业有限公司",
            "product": "五常大米（稻花香2号）",
            "net_content_kg": "5",
            "codes": [{"a_code": "WCA7Kp2Qx9Lm", "b_code": "WCB3Zt8Rv1Nq"}],
            "trace": {
                "plot": "五常市民乐乡 3 号地块",
                "seed": "五优稻4号",
                "inputs": "腐熟农家肥 2 次，人工除草",
                "inspection": f"{today.year} 年秋季抽检合格（报告 WC-{today.year}-0917）",
            },
        },
        {
            "number": f"WCMY{today:%Y%m%d}B",
            "producer": "五常市民乐乡稻花香米业有限公司",
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
    # Activation follows a passed inspection (seed 002): the first batch's report, then
    # the regulator's activation; the second batch stays unactivated.
    grain = GrainService(SqlGrain(cast(SqlRegistry, admin.registry)), admin.changed)
    report = {
        "report_number": f"WC-{today.year}-0917",
        "laboratory": "五常市质量技术监督检验检测中心",
        "result": "pass",
        "inspected_on": today.isoformat(),
    }
    grain.upload_inspection(rows["batches"][0]["number"], report, DEMO_REPORT, ALL)
    admin.activate_batch(rows["batches"][0]["number"], ALL)
    states = {1: "suspended", 2: "revoked", 3: "cancelled"}
    for idx, status in states.items():
        number = rows["certs"][idx]["number"]
        current = admin.registry.certificate(number)
        if current is not None and current.status.value != status:
            admin.change_certificate_status(number, {"status": status, "reason": _REASONS[status]}, ALL)
    admin.void_order(f"{today:%Y%m%d}-002", "客户退订，标志已回收", ALL)
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


DEMO_LOGIN = "demo@example.com"


def seed_demo_account(accounts: AccountService) -> tuple[str, str]:
    """The dashboard's demo account (an admin of everything): created on the first run, its
    password set anew on every run (a fixed, published password would open any instance
    seeded with it). Returns (login, password) to print."""
    password = secrets.token_urlsafe(12)
    try:
        accounts.create_user(DEMO_LOGIN, password, "admin", "all", None, name="演示管理员")
    except Conflict:
        accounts.set_password(DEMO_LOGIN, password)
    return DEMO_LOGIN, password
