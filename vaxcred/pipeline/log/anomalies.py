"""The anomaly report: patterns of insider abuse that France and Poland found only by chance (SECURITY.md §3).

* **busiest site-hours** — site signatures per site per hour, highest first (one hijacked account signed 54,000
  passes in France: a burst shows here);
* **signing outside opening hours** — site signatures whose local time (Viet Nam, UTC+7) falls outside the
  opening hours (default 07:00–19:00);
* **sites signing more than they recorded** — a site's signatures against the doses it recorded (re-signing after
  corrections makes a few; far more is a finding);
* **passports without a verified registry result** — passports whose registry check was not VERIFIED: must be zero.

Read-only SQL over the tables the log covers (the audit proves those rows are the logged ones).
"""

from __future__ import annotations

__all__ = ["AnomalyReport", "SiteCount", "SiteHour", "anomaly_report"]

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaxcred.storage.schema import doses, passports, registry_checks, site_signature_batches, site_signatures

#: Viet Nam's civil time (UTC+7, no daylight saving since 1975)
VIETNAM = timezone(timedelta(hours=7))


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteHour:
    site_id: str
    hour: datetime  # the local hour (UTC+7) the signatures fell in
    signatures: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteCount:
    site_id: str
    signatures: int
    recorded: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalyReport:
    busiest_hours: tuple[SiteHour, ...]
    outside_hours: tuple[
        SiteCount, ...
    ]  # ``signatures`` outside opening hours, ``recorded``: all of the site's
    oversigning: tuple[SiteCount, ...]
    passports_without_verified_registry: int


def anomaly_report(
    conn: Connection,
    *,
    opening: tuple[int, int] = (7, 19),
    top: int = 20,
    oversign_ratio: float = 1.5,
) -> AnomalyReport:
    """The report over the whole database; ``opening``: local opening hours [start, end)."""
    start, end = opening
    if not 0 <= start < end <= 24:
        raise ValueError("opening hours are 0 <= start < end <= 24")
    per_hour: dict[tuple[str, datetime], int] = {}
    outside: dict[str, int] = {}
    total: dict[str, int] = {}
    # streamed: one row per signature (a day of a large province fits easily; the query is a plain scan)
    # a batch member's site is its batch's (storage migration 0012)
    signing_sites = sa.select(
        sa.func.coalesce(site_signature_batches.c.site_id, site_signatures.c.site_id),
        site_signatures.c.signed_at,
    ).select_from(
        site_signatures.outerjoin(
            site_signature_batches, site_signature_batches.c.id == site_signatures.c.batch_id
        )
    )
    for site_id, signed_at in conn.execute(signing_sites):
        local = signed_at.astimezone(VIETNAM)
        hour = local.replace(minute=0, second=0, microsecond=0)
        per_hour[(site_id, hour)] = per_hour.get((site_id, hour), 0) + 1
        total[site_id] = total.get(site_id, 0) + 1
        if not start <= local.hour < end:
            outside[site_id] = outside.get(site_id, 0) + 1
    recorded: dict[str, int] = {
        str(site): int(n)
        for site, n in conn.execute(sa.select(doses.c.site_id, sa.func.count()).group_by(doses.c.site_id))
    }
    busiest = sorted(per_hour.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))[:top]
    unverified = conn.execute(
        sa.select(sa.func.count())
        .select_from(passports.join(registry_checks, passports.c.registry_check_id == registry_checks.c.id))
        .where(registry_checks.c.status != "VERIFIED")
    ).scalar_one()
    return AnomalyReport(
        busiest_hours=tuple(SiteHour(site_id=s, hour=h, signatures=n) for (s, h), n in busiest),
        outside_hours=tuple(
            SiteCount(site_id=s, signatures=n, recorded=total[s])
            for s, n in sorted(outside.items(), key=lambda i: -i[1])
        ),
        oversigning=tuple(
            SiteCount(site_id=s, signatures=n, recorded=recorded.get(s, 0))
            for s, n in sorted(total.items())
            if n > oversign_ratio * recorded.get(s, 0)
        ),
        passports_without_verified_registry=int(unverified),
    )
