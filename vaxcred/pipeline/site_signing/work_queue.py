"""Site signing's work queue: the next doses of a site that need a signature (:func:`_to_sign`), read along the
(site_id, id) index in a transaction of :mod:`~vaxcred.pipeline.site_signing.stage`, its workers or its pipelined
signing (:func:`_queue_rows`; with the rows' versions: :mod:`~vaxcred.pipeline.site_signing.queue_versions`).

Nothing here logs personal data.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.pipeline.registry.lookup import RegistryStatus
from vaxcred.pipeline.site_signing.driver_reads import driver_fetch
from vaxcred.storage.schema import doses, persons, site_signatures

_VERIFIED = RegistryStatus.VERIFIED.value
_current = site_signatures.c.superseded_at.is_(None)


class _DoseRow(NamedTuple):
    """A dose to sign, as read (plain values: it crosses to a signing process)."""

    id: int
    dose_number: int
    date: dt.date
    site_id: str
    vaccine: str
    lot: str
    citizen_id: str


_DOSE_COLUMNS = (
    doses.c.id,
    doses.c.dose_number,
    doses.c.date,
    doses.c.site_id,
    doses.c.vaccine,
    doses.c.lot,
    persons.c.citizen_id,
)

#: PostgreSQL, before a work-queue read: price a random page like a sequential one (the batch's rows are in
#: memory or on SSD). With the default 4.0 the planner walks ``pk_doses`` from ``after`` and filters by site (the
#: generic plan: every other site's doses read and dropped, ~21 rows per dose kept with the benchmark's 21 sites,
#: whatever the table size) or gathers all the site's remaining doses in a bitmap and sorts them (the custom plan:
#: a cost that grows with the site) instead of walking the (site_id, id) index, which holds exactly the site's
#: rows in id order, and stopping after the batch (measured, 20 k people: 14,500 rows and 6.6 ms per batch of
#: 500 against 620 rows and 1.6 ms; tests/pipeline/test_sitesign_queue_plan.py)
_PG_QUEUE_PLAN = "SET LOCAL random_page_cost = 1.1"


def _queue_rows(
    conn: Connection, site_id: str, after: int, limit: int, *, lock: bool = False
) -> list[_DoseRow]:
    """:func:`_to_sign` read in ``conn``'s transaction, along the (site_id, id) index on both backends; ``lock``:
    the rows read ``FOR SHARE`` of doses and persons (PostgreSQL; SQLite has no row locks)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_PG_QUEUE_PLAN)
        return _driver_rows(
            conn, ("queue", lock), _queue_statement, {"site_id": site_id, "after": after, "limit": limit}
        )
    # the statement built once (building it and its cache key each batch cost more than the SQL it runs)
    return [
        _DoseRow(*row)
        for row in conn.execute(_queue_statement(lock), {"site_id": site_id, "after": after, "limit": limit})
    ]


@functools.cache
def _queue_statement(lock: bool) -> sa.Select[Any]:
    """:func:`_to_sign` with its site, lower bound and limit as bound parameters (compiled once)."""
    statement = _to_sign(sa.bindparam("site_id"), sa.bindparam("after"), sa.bindparam("limit"))
    return statement.with_for_update(read=True, of=[doses, persons]) if lock else statement


def _driver_rows(
    conn: Connection,
    key: tuple[str, bool],
    build: Callable[[bool], sa.Select[Any]],
    parameters: Mapping[str, Any],
) -> list[_DoseRow]:
    """Rows of the statement ``build(key[1])`` (columns :data:`_DOSE_COLUMNS`), PostgreSQL only (see
    :func:`~vaxcred.pipeline.site_signing.driver_reads.driver_fetch`)."""
    return list(map(_DoseRow._make, driver_fetch(conn, key, build, parameters)))


def _to_sign(site_id: Any, after: Any, limit: Any) -> sa.Select[Any]:
    """The next ``limit`` doses of ``site_id`` after dose id ``after`` that need a signature.

    One site per query: it walks the index (site_id, id) in order, so every batch costs the same however many
    doses the other sites hold (an ``IN`` over all sites made SQLite merge and sort every site's remaining
    doses for each batch: quadratic in the number of doses).
    """
    return (
        sa.select(*_DOSE_COLUMNS)
        .join(persons, persons.c.id == doses.c.person_id)
        .where(
            doses.c.site_id == site_id,
            doses.c.id > after,
            doses.c.withdrawn_at.is_(None),
            persons.c.registry_status == _VERIFIED,
            ~_has_current_signature(),
        )
        .order_by(doses.c.id)
        .limit(limit)
    )


def _has_current_signature() -> sa.Exists:
    return sa.exists().where(site_signatures.c.dose_id == doses.c.id, _current)
