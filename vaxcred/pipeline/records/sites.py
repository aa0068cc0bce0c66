"""Vaccination sites: registering their names and provinces, many at once, and reading them back.

An import creates a site it has not seen with its ID only; :func:`register_sites` gives sites their name and
province (creating those not seen yet, updating the others) in one transaction — what ``vaxcred sites register``
and ``vaxcred keys sites`` call. :func:`read_sites_csv` reads the operator's table (``site_id,name,province``).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.cccd import PROVINCES
from vaxcred.pipeline.records.fields import FORMULA_PREFIXES, SITE_ID_PATTERN
from vaxcred.storage import Database
from vaxcred.storage.schema import sites

__all__ = ["BAD_SITE", "MAX_SITES", "Site", "list_sites", "read_sites_csv", "register_sites"]

#: :class:`PipelineError` code: a site entry with an invalid ID, name or province
BAD_SITE = "pipeline.bad_site"
#: a sites table holds at most this many rows (Viet Nam has about 11,000 communes)
MAX_SITES = 100_000
_MAX_NAME = 200
_SITE_RE = re.compile(SITE_ID_PATTERN + r"\Z", re.ASCII)


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    """A vaccination site: its ID, name (NFC; ``None`` while unknown) and province code (``None`` unknown)."""

    site_id: str
    name: str | None = None
    province_code: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.site_id, str) or not _SITE_RE.match(self.site_id):
            raise PipelineError(f"site ID must match {SITE_ID_PATTERN}", code=BAD_SITE, field="site_id")
        if self.name is not None and (
            not isinstance(self.name, str)
            or not self.name.strip()
            or len(self.name) > _MAX_NAME
            or not self.name.isprintable()
            or self.name.startswith(FORMULA_PREFIXES)
            or not unicodedata.is_normalized("NFC", self.name)
        ):
            raise PipelineError(
                f"site {self.site_id}: the name must be 1–{_MAX_NAME} printable characters (NFC), not starting "
                "with =, +, - or @",
                code=BAD_SITE,
                field="name",
            )
        if self.province_code is not None and self.province_code not in PROVINCES:
            raise PipelineError(
                f"site {self.site_id}: {self.province_code!r} is not one of the 63 province codes",
                code=BAD_SITE,
                field="province",
            )


def read_sites_csv(path: Path | str) -> tuple[Site, ...]:
    """Sites from a UTF-8 CSV with the columns ``site_id,name,province`` (province: the three-digit code, or
    empty); raises :class:`PipelineError` ``pipeline.bad_site`` naming the line of the first bad row."""
    path = Path(path)
    found: dict[str, Site] = {}
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.DictReader(stream, strict=True)
            missing = {"site_id", "name"} - set(reader.fieldnames or ())
            if missing:
                raise PipelineError(
                    f"{path.name}: the header lacks {', '.join(sorted(missing))} (site_id,name,province)",
                    code=BAD_SITE,
                )
            for row in reader:
                line = reader.line_num
                if len(found) >= MAX_SITES:
                    raise PipelineError(f"{path.name}: more than {MAX_SITES} sites", code=BAD_SITE)
                try:
                    site = Site(
                        site_id=(row.get("site_id") or "").strip(),
                        name=unicodedata.normalize("NFC", (row.get("name") or "").strip()) or None,
                        province_code=(row.get("province") or "").strip() or None,
                    )
                except PipelineError as e:
                    raise PipelineError(
                        f"{path.name} line {line}: {e.message}", code=BAD_SITE, field=e.field
                    ) from e
                if site.site_id in found:
                    raise PipelineError(
                        f"{path.name} line {line}: site {site.site_id} repeated", code=BAD_SITE
                    )
                found[site.site_id] = site
    except UnicodeDecodeError as e:
        raise PipelineError(f"{path.name}: not UTF-8 (save it as CSV UTF-8)", code=BAD_SITE) from e
    except csv.Error as e:
        raise PipelineError(f"{path.name}: malformed CSV: {e}", code=BAD_SITE) from e
    return tuple(found.values())


def register_sites(db: Database, entries: Iterable[Site]) -> tuple[int, int]:
    """Create or update the sites (name and province; a ``None`` keeps the stored value) in one transaction;
    returns (created, updated)."""
    wanted = list(entries)
    if not all(isinstance(s, Site) for s in wanted):
        raise TypeError("entries must be Site values")
    created = updated = 0
    with db.begin() as conn:
        stored = {
            r.site_id: r
            for r in conn.execute(
                sa.select(sites).where(sites.c.site_id.in_(sorted(s.site_id for s in wanted)))
            )
        }
        new = [s for s in wanted if s.site_id not in stored]
        if new:
            conn.execute(
                sa.insert(sites),
                [{"site_id": s.site_id, "name": s.name, "province_code": s.province_code} for s in new],
            )
            created = len(new)
        for s in wanted:
            row = stored.get(s.site_id)
            if row is None:
                continue
            values = {
                k: v
                for k, v in (("name", s.name), ("province_code", s.province_code))
                if v is not None and v != getattr(row, k)
            }
            if values:
                conn.execute(sa.update(sites).where(sites.c.site_id == s.site_id).values(values))
                updated += 1
    return created, updated


def list_sites(db: Database, site_ids: Sequence[str] = ()) -> tuple[Site, ...]:
    """The stored sites (or those of ``site_ids``), by ID."""
    query = sa.select(sites.c.site_id, sites.c.name, sites.c.province_code).order_by(sites.c.site_id)
    if site_ids:
        query = query.where(sites.c.site_id.in_(sorted(site_ids)))
    with db.connect() as conn:
        return tuple(_stored_site(r.site_id, r.name, r.province_code) for r in conn.execute(query))


def _stored_site(site_id: str, name: str | None, province: str | None) -> Site:
    """A stored row as a :class:`Site` (stored rows were checked when written; not checked again)."""
    site = object.__new__(Site)
    object.__setattr__(site, "site_id", site_id)
    object.__setattr__(site, "name", name)
    object.__setattr__(site, "province_code", province)
    return site
