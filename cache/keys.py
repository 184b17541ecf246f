"""Every Redis key name the verify path's caches use, in one place.

A key name is a contract between releases: during a rolling deploy two releases read
and write the same keys, so renaming one here is a data migration, not a refactor.
The names below are the ones the service has always written (they predate this
module); the scan store's keys live with the scan store (anomaly/).

Layout (one server or a Redis Cluster; no call spans two keys' slots atomically):

    v:c2.<gen>:<code>               a code's record, or b"" for "never issued", under the
                                    "codes" generation (`v:c:<code>` before it: not read);
                                    `x` for <gen> (and in v:s…): kept a second by a worker
                                    that cannot read the generations
    v:lk:<key>                      a refill lock (SET NX PX) beside any v:<key>
    v:s<layout>.<gen>:<kind>:<key>  a status record under the "status" generation
    v:f<layout>.<gen>:<day>         verdict facts of the groups (hash), by status generation
                                    and China day, for the scan script (one server)
    v:gen:status, v:gen:codes       change generations (INCR)
    v:bloom, v:bloom:meta           the filter of issued codes and the size it was built for
    v:bloom:building                one process builds a missing filter at a time
    v:bloom:imports                 imports in flight (sorted set: token -> deadline ms)
    wx:token:value, wx:token:lock   the WeChat access token shared by every worker
    wx:sess:<sha256 of token>       a mini-program session: the shopper's openid
    wx:user:<sha256 of openid>      the keys of that shopper's sessions (erasure ends them)
"""

from __future__ import annotations

# The namespace of the shared record cache and the generations; the functions below
# name keys inside it (the adapters add it), the constants after them are whole names.
PREFIX = "v:"
LOCK = "lk:"  # + the key it guards: a refill lock beside a cached value
# A code's cached record names the "codes" generation: an import (at its start and at its
# end) or any other write of codes moves it, and every code's cached record and absence is
# retired at once. Writers deleted each written code's key instead, twice a code (before and
# after its save): 1.2 s of the importer's CPU and 0.5 s of Redis's per million codes.
CODE_LAYOUT = 2

# Bump when a cached status record (LabelGroup, CertificateState, ...) changes its
# fields: in the key name, so workers of two releases never unpack each other's values.
STATUS_LAYOUT = 3  # 3: LabelGroup's segments and use records (issue 17)

GENERATION_NAMES = ("status", "codes")


def _generation(generation: int | None) -> str:
    # None: a worker that cannot read the generations. It cannot know whether its last
    # generation is still current, so it keeps its entries under a name of their own ("x"),
    # for a second, and never reads what healthy workers keep for a day under a generation
    # an import or a status change may have moved on from meanwhile.
    return "x" if generation is None else str(generation)


def code_record(generation: int | None, code: str) -> str:
    """A code's cached record under a codes generation (inside PREFIX)."""
    return f"c{CODE_LAYOUT}.{_generation(generation)}:{code}"


def status_record(generation: int | None, kind: str, key: object) -> str:
    """A status record (group, certificate, order, batch, batch state) under a status
    generation (inside PREFIX): a new generation is a new set of names, so one change
    reaches every worker without deleting any key."""
    return f"s{STATUS_LAYOUT}.{_generation(generation)}:{kind}:{key}"


# Bump when the facts' value ("verdict|package kg|product", anomaly/scan.lua) changes.
FACTS_LAYOUT = 1


def verdict_facts(generation: int, day: int) -> str:
    """The verdict facts of label groups and BQ batches (field "g<id>" / "b<id>") under a
    status generation and a China calendar day (its ordinal), read by the scan script that
    resolves a code in the verify's own round trip (inside PREFIX): what decides a verdict
    (a certificate's status and dates, an order voided, a batch activated) changes only with
    the generation, and expiry only with the day."""
    return f"f{FACTS_LAYOUT}.{generation}:{day}"


def generation(name: str, prefix: str = PREFIX) -> str:
    return prefix + "gen:" + name


# The filter of issued codes (whole names).
FILTER = PREFIX + "bloom"
FILTER_META = ":meta"  # + the filter's key: "<m_bits>:<k>", written after the bits
FILTER_BUILDING = ":building"  # + the filter's key: the builder's claim
FILTER_IMPORTS = ":imports"  # + the filter's key: imports in flight
# The imports in flight as the generations read them (inside PREFIX): the same key as
# FILTER + FILTER_IMPORTS, read in the generations' round trip.
IMPORTS = "bloom" + FILTER_IMPORTS

# The WeChat access token shared by every worker (cache.wechat_tokens).
WECHAT_TOKEN = "wx:token:"  # noqa: S105 - a key name, not a secret
WECHAT_SESSION = "wx:sess:"
WECHAT_USER_SESSIONS = "wx:user:"
