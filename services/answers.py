"""What the shopper-facing use cases return: typed values, never HTTP-shaped dicts.

A verify answers one `Answer`; a photo scan a `PhotoAnswer` (every symbol read, and the
answer for the best one); a report a `ReportReceipt`. The entrypoints render them with one
presenter (verify_api/presenter.py): the JSON API, the web result page and the
mini-program, in the shopper's language (the message is the presenter's: a use case
answers facts, not sentences).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.certificates import CertificateKind, CertificateStatus
from domain.codes import CodeKind, InvalidReason
from domain.scans import OpenFlag, ScanSummary
from domain.verdicts import Verdict


@dataclass(frozen=True, slots=True)
class ProductFacts:
    """The product a label is on: the certificate's product (organic) or the batch's (BQ)."""

    name: str
    description: str | None
    package: str | None
    label_spec: str | None


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """The certificate behind a code, its status as of China's today."""

    number: str
    holder: str
    kind: CertificateKind
    status: CertificateStatus
    valid_from: date
    valid_until: date
    status_since: date | None
    body_code: str
    body_name: str


@dataclass(frozen=True, slots=True)
class TraceFacts:
    """A BQ batch's traceability: who packed it, when it was activated, what it records."""

    batch: str
    producer: str
    activated_at: datetime | None
    role: str | None  # "a" (public) or "b" (hidden anti-counterfeit)
    plot: Any = None
    seed: Any = None
    inputs: Any = None
    inspection: Any = None
    purchases: Any = None  # the raw-grain purchases the batch's grain came from (issue 17)


@dataclass(frozen=True, slots=True)
class Answer:
    """One verify: the verdict and the facts behind it.

    `code` is the normalized input ("" when nothing could be read); `reason` says why an
    `invalid_format` input is none. `scans` is the code's history as a shopper may read
    it: None for a code that is no issued one (not found, invalid) and when the scan store
    could not answer. `flags` are the open flags that made (or did not make) it suspicious.
    """

    code: str
    kind: CodeKind | None
    verdict: Verdict
    reason: InvalidReason | None = None
    product: ProductFacts | None = None
    certificate: CertificateFacts | None = None
    issued_on: date | None = None
    issued_while_valid: bool | None = None
    # A BQ B code (the hidden anti-counterfeit one) checked before: said in the message.
    already_verified: bool = False
    scans: ScanSummary | None = None
    flags: tuple[OpenFlag, ...] = ()
    trace: TraceFacts | None = None


@dataclass(frozen=True, slots=True)
class FoundSymbol:
    """One symbol a photo showed: its symbology, what it says, and the label code in it."""

    symbology: str
    payload: str
    code: str | None  # None: not a label code (an EAN-13, a URL of another site)
    confidence: float


@dataclass(frozen=True, slots=True)
class PhotoAnswer:
    found: tuple[FoundSymbol, ...]
    verification: Answer | None  # the best code's answer; None when no symbol was a code


@dataclass(frozen=True, slots=True)
class ReportReceipt:
    report_id: int
    flag_id: int
