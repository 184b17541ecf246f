"""The verify use case against in-memory fakes of its ports (tests/fakes): the registry's
facts and the scan history make the verdict; admin changes reach it through the
generations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cache.records import RecordResolver
from domain.codes import InvalidReason, normalize
from domain.errors import BadInput, Conflict, TooManyRequests
from domain.verdicts import Verdict
from tests.fakes.caches import FakeGenerations
from tests.fakes.house import ALL, House, cert_number, code_row, organic_code, stocked_house


@pytest.fixture
def house() -> House:
    house = stocked_house()
    cert = cert_number("0123", 17)
    house.admin.import_codes(
        [
            code_row(organic_code("0123", 1), cert, order="ORDER-1"),
            code_row(organic_code("0123", 2), cert, order="ORDER-2"),
        ],
        ALL,
    )
    return house


def test_an_issued_code_of_a_valid_certificate_verifies_as_genuine(house: House) -> None:
    answer = house.answer(organic_code("0123", 1))
    assert answer.verdict is Verdict.GENUINE
    assert answer.certificate is not None and answer.certificate.number == cert_number("0123", 17)
    assert answer.certificate.body_code == "0123"
    assert answer.product is not None and answer.product.name == "有机大米"


def test_a_code_never_issued_verifies_as_not_found(house: House) -> None:
    answer = house.answer(organic_code("0123", 999))
    assert answer.verdict is Verdict.NOT_FOUND
    assert answer.scans is None  # a never-issued code has no history to read


def test_a_code_of_an_unknown_body_is_invalid_without_a_lookup(house: House) -> None:
    answer = house.answer(organic_code("0999", 1))
    assert answer.verdict is Verdict.INVALID_FORMAT
    assert answer.reason is InvalidReason.UNKNOWN_BODY
    assert house.ledger.scans == {}  # nothing recorded for a malformed code


def test_a_voided_orders_codes_verify_as_voided(house: House) -> None:
    assert house.answer(organic_code("0123", 1)).verdict is Verdict.GENUINE  # cached by the reader now
    house.admin.void_order("ORDER-1", "labels stolen", ALL)
    assert house.answer(organic_code("0123", 1)).verdict is Verdict.VOIDED
    assert house.answer(organic_code("0123", 2)).verdict is Verdict.GENUINE  # another order


def test_a_suspended_certificates_codes_verify_as_suspended(house: House) -> None:
    house.answer(organic_code("0123", 1))
    house.admin.change_certificate_status(cert_number("0123", 17), {"status": "suspended"}, ALL)
    assert house.answer(organic_code("0123", 1)).verdict is Verdict.CERTIFICATE_SUSPENDED


def test_a_suspicious_flag_turns_a_genuine_answer_suspicious(house: House) -> None:
    code = organic_code("0123", 1)
    house.ledger.raise_flag(code, "impossible_travel", "suspicious", house.now - timedelta(hours=1))
    answer = house.answer(code)
    assert answer.verdict is Verdict.SUSPICIOUS
    assert answer.flags[0].rule == "impossible_travel"
    # The flag's verdict is the one the scan store recorded before it: genuine, once.
    assert house.ledger.scans[code][-1].verdict == "genuine"


def test_a_warn_flag_is_shown_but_leaves_the_verdict(house: House) -> None:
    code = organic_code("0123", 1)
    house.ledger.raise_flag(code, "velocity", "warn", house.now)
    answer = house.answer(code)
    assert answer.verdict is Verdict.GENUINE and answer.flags[0].severity == "warn"


def test_each_verify_is_counted_in_the_codes_scan_history(house: House) -> None:
    code = organic_code("0123", 1)
    house.answer(code, client="alice")
    house.answer(code, client="bob")
    scans = house.answer(code, client="alice").scans
    assert scans is not None and scans.count == 3 and scans.distinct_scanners == 2
    assert scans.you_count == 2


def test_a_read_only_lookup_records_no_scan(house: House) -> None:
    code = organic_code("0123", 1)
    house.verify.verify(_request(code), record=False)
    assert code not in house.ledger.scans


def test_a_scan_store_outage_still_answers_the_verdict(house: House) -> None:
    house.ledger.down = True
    answer = house.answer(organic_code("0123", 1))
    assert answer.verdict is Verdict.GENUINE and answer.scans is None


def test_a_client_guessing_many_unknown_codes_is_refused(house: House) -> None:
    house.ledger.enumeration_per_hour = 3
    for serial in range(900, 903):
        house.answer(organic_code("0123", serial), client="guesser")
    with pytest.raises(TooManyRequests) as refused:
        house.answer(organic_code("0123", 903), client="guesser")
    assert refused.value.code == "enumeration_throttled"


def test_an_unknown_channel_is_bad_input(house: House) -> None:
    with pytest.raises(BadInput) as bad:
        house.answer(organic_code("0123", 1), channel="carrier-pigeon")
    assert bad.value.code == "invalid_channel"


def test_a_code_saved_by_an_import_verifies_at_once_though_a_worker_cached_its_absence() -> None:
    house = stocked_house()
    code = organic_code("0123", 5)
    assert house.answer(code).verdict is Verdict.NOT_FOUND  # the filter and the reader say so now
    house.admin.import_codes([code_row(code, cert_number("0123", 17))], ALL)
    assert house.answer(code).verdict is Verdict.GENUINE


def test_another_workers_cached_absence_is_not_answered_once_an_import_saved_the_code() -> None:
    # A worker that asked the database (here with no filter, as when it cannot rule a code
    # out) keeps the code's absence in the shared cache for a minute. Nothing deletes it: an
    # import moves the codes generation at its start (and its end), so from the moment its
    # first chunk is saved every worker reads past it.
    house = stocked_house()
    other = RecordResolver(
        house.registry, house.shared, house.generations, None, refresh_s=0, wait_for_refill_s=0
    )
    first, later = organic_code("0123", 5), organic_code("0123", 6)

    def found(code: str) -> bool:
        other.refresh()  # as every verify does first
        return other.find_record(normalize(code)) is not None

    assert not found(first)
    absence = [value for value, expires in house.shared.values.values() if value == b""]
    assert absence == [b""]  # shared, for a minute (the clock does not move here)
    seen: list[bool] = []

    def progress(read: int, _landed: int) -> None:
        if read == 2:  # the second chunk submitted: the first is saved, the import runs on
            seen.append(found(first))

    rows = [code_row(code, cert_number("0123", 17)) for code in (first, later)]
    house.admin.import_codes(rows, ALL, chunk=1, progress=progress)
    assert seen == [True]
    assert found(later)


class _OwnGenerations:
    """One worker's view of the shared generations, which fails for it alone (a timeout
    to its Redis node, say) while the writers move them on."""

    def __init__(self, shared: FakeGenerations) -> None:
        self.shared = shared
        self.fail = False

    def current(self) -> dict[str, int] | None:
        return None if self.fail else self.shared.current()

    def bump(self, *names: str) -> None:
        self.shared.bump(*names)


def test_a_worker_that_cannot_read_the_generations_never_answers_what_others_cached_before_an_import() -> (
    None
):
    # A healthy worker keeps a code's absence for a minute under the codes generation it
    # saw. Another worker, which saw that generation too and then lost the generations,
    # cannot know an import moved them on since: it must not read the healthy worker's
    # entries (under its last generation they look current), nor leave its own for long.
    house = stocked_house()
    code = organic_code("0123", 5)

    def worker(generations: object) -> RecordResolver:
        return RecordResolver(
            house.registry, house.shared, generations, None, refresh_s=0, wait_for_refill_s=0
        )  # type: ignore[arg-type]

    healthy, own = worker(house.generations), _OwnGenerations(house.generations)
    blind = worker(own)
    blind.refresh()  # it has seen the generations once, as a worker that served a while
    healthy.refresh()
    assert healthy.find_record(normalize(code)) is None  # cached as absent, for a minute
    own.fail = True
    house.admin.import_codes([code_row(code, cert_number("0123", 17))], ALL)
    blind.refresh()
    assert blind.find_record(normalize(code)) is not None
    ttls = [expires for key, (_, expires) in house.shared.values.items() if ".x:" in key]
    assert ttls and max(ttls) - house.shared.clock() <= 1  # kept a second, apart


def test_an_import_back_from_a_stall_past_its_mark_retires_what_workers_cached_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An import that stalls past its in-flight mark (a minute) is taken for ended: workers
    # keep what they read for a minute (absences) or a day. When it goes on, the codes it
    # saves next must not be answered by those entries.
    import services.admin

    house = stocked_house()
    worker = RecordResolver(
        house.registry, house.shared, house.generations, None, refresh_s=0, wait_for_refill_s=0
    )
    first, stalled, last = (organic_code("0123", n) for n in (5, 6, 7))
    clock = [0.0]
    monkeypatch.setattr(services.admin.time, "monotonic", lambda: clock[0])
    seen: list[bool] = []

    def found(code: str) -> bool:
        worker.refresh()  # as every verify does first
        return worker.find_record(normalize(code)) is not None

    def progress(read: int, _landed: int) -> None:
        if read == 1:  # the first chunk in; then the importer stalls past its mark
            clock[0] += services.admin.IMPORT_MARK_S + 1
            house.filters.in_flight.clear()  # lapsed, as Redis drops a passed deadline
            seen.append(found(stalled))  # not yet saved: an absence, kept a minute
        if read == 3:  # the second chunk saved, the import still running
            seen.append(found(stalled))

    rows = [code_row(code, cert_number("0123", 17)) for code in (first, stalled, last)]
    house.admin.import_codes(rows, ALL, chunk=1, progress=progress)
    assert seen == [False, True]


def test_a_bq_code_of_a_batch_not_activated_verifies_as_not_activated() -> None:
    house = House()
    batch = {
        "number": "WC-2026-1",
        "producer": "五常示范米业",
        "product": "五常大米",
        "codes": [{"a_code": "WCA7Kp2Qx9Lm", "b_code": "WCB3Zt8Rv1Nq"}],
    }
    house.admin.upsert_batch(batch, ALL)
    assert house.answer("WCA7Kp2Qx9Lm").verdict is Verdict.NOT_ACTIVATED
    with pytest.raises(Conflict):  # no inspection report yet
        house.admin.activate_batch("WC-2026-1", ALL)
    house.registry.inspections["WC-2026-1"] = {"result": "pass", "report_number": "JC-1"}
    house.admin.activate_batch("WC-2026-1", ALL)
    answer = house.answer("WCA7Kp2Qx9Lm")
    assert (
        answer.verdict is Verdict.GENUINE and answer.trace is not None and answer.trace.batch == "WC-2026-1"
    )


def _request(code: str) -> object:
    from services.verify import VerifyRequest

    return VerifyRequest(code)
