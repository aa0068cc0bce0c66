"""The population registry check (Cơ sở dữ liệu quốc gia về dân cư): lookup adapters and the pure matching rule.

- :class:`PopulationRegistry` — the protocol: a *batch* lookup by citizen ID; an absent ID is not found.
- :func:`match` (pure, ``now`` passed in) — compares the person as recorded with the registry entry:

  1. ``INVALID_ID`` — the recorded ID is not a well-formed CCCD / CMND / other number, or its digits 4–6
     disagree with the recorded date of birth / gender (``mismatch_fields`` then names ``dob`` / ``gender``);
  2. ``NOT_FOUND`` — the registry has no entry for the ID;
  3. ``MISMATCH`` — one or more of ``name`` (:func:`~vaxcred.pipeline.names.names_match`; the kind of
     difference is kept in ``name_difference``), ``dob`` (:func:`dates_of_birth_match`), ``gender`` (compared
     only when both sides know it) differ;
  4. ``VERIFIED`` — otherwise.

  ``name_difference`` is ``NONE`` when no name was compared (``INVALID_ID``, ``NOT_FOUND``).

- Adapters: :class:`TableRegistry` (in memory; :meth:`TableRegistry.from_csv` is the file edge) and
  :class:`HttpRegistry` (JSON over HTTP with :mod:`urllib.request` only: batches, timeout, retries with
  exponential backoff, a response-size cap and strict validation of the answer).

Personal data never reaches a log line or an error message: IDs, names and dates are not logged at all.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import functools
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from vaxcred.errors import ModelError
from vaxcred.model import DateOfBirth
from vaxcred.pipeline.cccd import Gender, check_consistency, parse_citizen_id
from vaxcred.pipeline.errors import (
    BAD_REGISTRY_DATA,
    REGISTRY_BAD_RESPONSE,
    REGISTRY_REJECTED,
    REGISTRY_UNAVAILABLE,
    PipelineError,
)
from vaxcred.pipeline.names import NameDifference, compare_names, names_match
from vaxcred.pipeline.records import Person
from vaxcred.privacy import mask_dob, mask_id, mask_name

__all__ = [
    "MISMATCH_FIELDS",
    "REGISTRY_FIELDS",
    "HttpRegistry",
    "PopulationRegistry",
    "RegistryEntry",
    "RegistryResult",
    "RegistryStatus",
    "TableRegistry",
    "dates_of_birth_match",
    "match",
    "write_registry_csv",
]

logger = logging.getLogger(__name__)

#: The columns of a registry table (CSV header) and the keys of an HTTP result object.
REGISTRY_FIELDS = ("citizen_id", "full_name", "dob", "gender")
#: The fields a ``MISMATCH`` can name, in this order.
MISMATCH_FIELDS = ("name", "dob", "gender")


class RegistryStatus(enum.StrEnum):
    """The outcome of checking one person against the population registry."""

    VERIFIED = "VERIFIED"
    MISMATCH = "MISMATCH"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ID = "INVALID_ID"


@functools.lru_cache(maxsize=1 << 16)
def _dob(text: str) -> DateOfBirth:
    """Parse (and cache: dates repeat, ``DateOfBirth`` is immutable) a registry date of birth."""
    return DateOfBirth.from_text(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryEntry:
    """A person as the registry knows them.  ``dob`` is DCC-style text (``YYYY[-MM[-DD]]`` or ``""``).

    Registry data is untrusted input: an invalid entry raises :class:`PipelineError`
    (``pipeline.bad_registry_data``, ``field`` set).  ``full_name`` is kept exactly as received (its Unicode
    form is what :func:`match` reports).
    """

    citizen_id: str
    full_name: str
    dob: str
    gender: Gender

    def __post_init__(self) -> None:
        for field in ("citizen_id", "full_name", "dob"):
            if not isinstance(getattr(self, field), str):
                raise PipelineError(f"{field} must be a string", code=BAD_REGISTRY_DATA, field=field)
        if not self.citizen_id:
            raise PipelineError("citizen_id is empty", code=BAD_REGISTRY_DATA, field="citizen_id")
        if not self.full_name.strip() or not self.full_name.isprintable():
            raise PipelineError(
                "full_name is empty or not printable", code=BAD_REGISTRY_DATA, field="full_name"
            )
        try:
            _dob(self.dob)
        except ModelError as e:
            raise PipelineError(f"dob: {e.message}", code=BAD_REGISTRY_DATA, field="dob") from e
        if not isinstance(self.gender, Gender):
            raise PipelineError("gender must be M, F or empty", code=BAD_REGISTRY_DATA, field="gender")

    def __repr__(self) -> str:  # personal data: masked
        return (
            f"RegistryEntry(citizen_id={mask_id(self.citizen_id)!r}, full_name={mask_name(self.full_name)!r}, "
            f"dob={mask_dob(self.dob)!r}…)"
        )

    @property
    def date_of_birth(self) -> DateOfBirth:
        """``dob`` as a :class:`~vaxcred.model.DateOfBirth`."""
        return _dob(self.dob)

    @classmethod
    def from_fields(cls, fields: Mapping[str, object]) -> RegistryEntry:
        """Build from a row / JSON object with :data:`REGISTRY_FIELDS` (all strings; ``gender`` ``M``/``F``/``""``).

        Extra keys are ignored; a missing key or a non-string value raises ``pipeline.bad_registry_data``.
        """
        values: dict[str, str] = {}
        for field in REGISTRY_FIELDS:
            value = fields.get(field)
            if not isinstance(value, str):
                raise PipelineError(
                    f"{field} is missing or not a string", code=BAD_REGISTRY_DATA, field=field
                )
            values[field] = value
        try:
            gender = Gender(values["gender"])
        except ValueError:
            raise PipelineError(
                "gender must be M, F or empty", code=BAD_REGISTRY_DATA, field="gender"
            ) from None
        return cls(
            citizen_id=values["citizen_id"], full_name=values["full_name"], dob=values["dob"], gender=gender
        )

    def to_fields(self) -> dict[str, str]:
        """The entry as :data:`REGISTRY_FIELDS` text (CSV row / JSON object)."""
        return {
            "citizen_id": self.citizen_id,
            "full_name": self.full_name,
            "dob": self.dob,
            "gender": self.gender.value,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryResult:
    """The result of one registry check, with the time it was made (aware UTC)."""

    citizen_id: str
    status: RegistryStatus
    mismatch_fields: tuple[str, ...] = ()
    name_difference: NameDifference = NameDifference.NONE
    checked_at: dt.datetime

    def __post_init__(self) -> None:
        if not isinstance(self.status, RegistryStatus):
            raise TypeError("status must be a RegistryStatus")
        if not isinstance(self.name_difference, NameDifference):
            raise TypeError("name_difference must be a NameDifference")
        if (
            not isinstance(self.mismatch_fields, tuple)
            or tuple(f for f in MISMATCH_FIELDS if f in self.mismatch_fields) != self.mismatch_fields
        ):
            raise ValueError(f"mismatch_fields must be an ordered tuple drawn from {MISMATCH_FIELDS}")
        if self.status is RegistryStatus.MISMATCH and not self.mismatch_fields:
            raise ValueError("a MISMATCH names its fields")
        if self.status in (RegistryStatus.VERIFIED, RegistryStatus.NOT_FOUND) and self.mismatch_fields:
            raise ValueError(f"a {self.status.value} result names no mismatch fields")
        if not isinstance(self.checked_at, dt.datetime) or self.checked_at.utcoffset() != dt.timedelta(0):
            raise ValueError("checked_at must be an aware UTC datetime")

    def __repr__(self) -> str:
        return (
            f"RegistryResult(citizen_id={mask_id(self.citizen_id)!r}, status={self.status.value!r}, "
            f"mismatch_fields={self.mismatch_fields!r}, name_difference={self.name_difference.value!r}, "
            f"checked_at={self.checked_at.isoformat()!r})"
        )


def dates_of_birth_match(recorded: DateOfBirth, registry: DateOfBirth) -> bool:
    """The date-of-birth rule of :func:`match`, tolerant of partial dates.

    Two empty dates match.  Otherwise both must know at least the year, and every component *both* know
    (year, then month, then day) must be equal: a recorded ``1985`` matches a registry ``1985-03-17``, a recorded
    ``1985-03`` does not match ``1985-04-17``.  One side empty and the other not is a mismatch: nothing could be
    verified, and the record needs a correction (or the registry entry is incomplete).
    """
    if recorded.year is None or registry.year is None:
        return recorded.year is None and registry.year is None
    pairs = ((recorded.year, registry.year), (recorded.month, registry.month), (recorded.day, registry.day))
    for mine, theirs in pairs:
        if mine is None or theirs is None:
            return True
        if mine != theirs:
            return False
    return True


def _utc(now: dt.datetime) -> dt.datetime:
    if not isinstance(now, dt.datetime):
        raise TypeError("now must be a datetime")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(dt.UTC)


def match(person: Person, entry: RegistryEntry | None, *, now: dt.datetime) -> RegistryResult:
    """Check ``person`` (as recorded) against the registry's ``entry`` (``None``: not found); pure.

    See the module docstring for the order of the checks.  ``entry`` must be for the same citizen ID
    (``ValueError`` otherwise: a caller mistake).
    """
    if not isinstance(person, Person):
        raise TypeError("person must be a Person")
    if entry is not None and not isinstance(entry, RegistryEntry):
        raise TypeError("entry must be a RegistryEntry or None")
    checked_at = _utc(now)
    cid_text = person.citizen_id

    # (1) the ID itself
    try:
        cid = parse_citizen_id(cid_text, id_type=person.id_type)
    except PipelineError:
        return RegistryResult(citizen_id=cid_text, status=RegistryStatus.INVALID_ID, checked_at=checked_at)
    problems = check_consistency(cid, person.dob, person.gender)
    if problems:
        named = {"gender" if p == "gender" else "dob" for p in problems}
        return RegistryResult(
            citizen_id=cid_text,
            status=RegistryStatus.INVALID_ID,
            mismatch_fields=tuple(f for f in MISMATCH_FIELDS if f in named),
            checked_at=checked_at,
        )

    # (2) presence
    if entry is None:
        return RegistryResult(citizen_id=cid_text, status=RegistryStatus.NOT_FOUND, checked_at=checked_at)
    if entry.citizen_id != cid_text:
        raise ValueError("the registry entry is for another citizen ID")

    # (3) the fields
    difference = compare_names(person.full_name, entry.full_name)
    fields: list[str] = []
    if not names_match(person.full_name, entry.full_name):
        fields.append("name")
    if not dates_of_birth_match(person.dob, entry.date_of_birth):
        fields.append("dob")
    if Gender.UNKNOWN not in (person.gender, entry.gender) and person.gender is not entry.gender:
        fields.append("gender")
    return RegistryResult(
        citizen_id=cid_text,
        status=RegistryStatus.MISMATCH if fields else RegistryStatus.VERIFIED,
        mismatch_fields=tuple(fields),
        name_difference=difference,
        checked_at=checked_at,
    )


@runtime_checkable
class PopulationRegistry(Protocol):
    """A population registry with batch lookup by citizen ID."""

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        """The entries found for ``citizen_ids``; an ID absent from the answer is not found."""
        ...


def _check_ids(citizen_ids: Sequence[str]) -> list[str]:
    if isinstance(citizen_ids, str) or not isinstance(citizen_ids, Sequence):
        raise TypeError("citizen_ids must be a sequence of str")
    if not all(isinstance(c, str) for c in citizen_ids):
        raise TypeError("citizen_ids must be a sequence of str")
    return list(dict.fromkeys(citizen_ids))  # de-duplicated, order kept


class TableRegistry:
    """An in-memory registry (reference implementation and demo): entries keyed by citizen ID."""

    def __init__(self, entries: Iterable[RegistryEntry]) -> None:
        table: dict[str, RegistryEntry] = {}
        for entry in entries:
            if not isinstance(entry, RegistryEntry):
                raise TypeError("entries must be RegistryEntry objects")
            if entry.citizen_id in table:
                raise ValueError(f"duplicate citizen ID {mask_id(entry.citizen_id)!r}")
            table[entry.citizen_id] = entry
        self._table = table

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]]) -> TableRegistry:
        """Build from rows with :data:`REGISTRY_FIELDS`; an invalid or duplicate row raises
        ``pipeline.bad_registry_data`` naming its (1-based) row number."""
        return cls(_entries_from_rows(rows, first=1, what="row"))

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> TableRegistry:
        """Read a UTF-8 CSV (BOM tolerated) with the header :data:`REGISTRY_FIELDS` (the I/O edge).

        Errors name the file's line number, never the personal data on it.
        """
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REGISTRY_FIELDS if c not in (reader.fieldnames or ())]
            if missing:
                raise PipelineError(
                    f"registry CSV lacks column(s) {', '.join(missing)}", code=BAD_REGISTRY_DATA
                )
            return cls(_entries_from_rows(reader, first=2, what="line"))

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        """The entries for ``citizen_ids`` that the table holds."""
        table = self._table
        return MappingProxyType({c: table[c] for c in _check_ids(citizen_ids) if c in table})

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, citizen_id: object) -> bool:
        return citizen_id in self._table

    def __repr__(self) -> str:
        return f"<TableRegistry: {len(self._table)} entries>"


def _entries_from_rows(
    rows: Iterable[Mapping[str, object]], *, first: int, what: str
) -> Iterator[RegistryEntry]:
    seen: set[str] = set()
    for number, row in enumerate(rows, start=first):
        try:
            entry = RegistryEntry.from_fields(row)
        except PipelineError as e:
            raise PipelineError(f"{what} {number}: {e.message}", code=BAD_REGISTRY_DATA, field=e.field) from e
        if entry.citizen_id in seen:
            raise PipelineError(
                f"{what} {number}: duplicate citizen ID", code=BAD_REGISTRY_DATA, field="citizen_id"
            )
        seen.add(entry.citizen_id)
        yield entry


def write_registry_csv(path: str | os.PathLike[str], entries: Iterable[RegistryEntry]) -> int:
    """Write ``entries`` as a registry CSV (streaming; the I/O edge for demos and benchmarks); returns the count."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=REGISTRY_FIELDS)
        writer.writeheader()
        for entry in entries:
            writer.writerow(entry.to_fields())
            count += 1
    return count


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a registry that redirects a POST of citizen IDs elsewhere is misconfigured."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError("duplicate key in JSON object")
        out[key] = value
    return out


#: HTTP statuses worth retrying besides 5xx: request timeout, too many requests.
_RETRYABLE_4XX = frozenset({408, 429})


class HttpRegistry:
    """The registry over HTTP: ``POST {base_url}/lookup`` with ``{"ids": [...]}`` (at most ``batch_size`` IDs),
    answered by ``200`` and ``{"results": [{"citizen_id", "full_name", "dob", "gender"}, ...]}``.

    - ``timeout`` (seconds) applies to connecting and to each socket read;
    - a 5xx, 408 or 429 status, a timeout or a connection error is retried up to ``retries`` times, sleeping
      ``backoff * 2**attempt`` seconds between attempts; when they are exhausted →
      ``pipeline.registry_unavailable``;
    - any other non-200 status (4xx, a redirect — redirects are never followed) → ``pipeline.registry_rejected``,
      not retried;
    - the answer is read up to ``max_response_bytes`` and validated strictly: UTF-8 JSON without duplicate keys,
      an object whose ``results`` is a list of objects with the four string fields (extra keys ignored), each
      ``citizen_id`` one that was asked for in that batch and at most once → else
      ``pipeline.registry_bad_response`` (not retried: a broken answer is not a transient fault);
    - ``proxies``: ``None`` uses the environment (``https_proxy`` …), ``{}`` none; ``headers`` are added to each
      request (an API token, …); ``sleep`` is injectable for tests.

    Nothing is sent at construction.  IDs are never logged: log lines give batch numbers and sizes only.
    """

    def __init__(
        self,
        base_url: str,
        *,
        batch_size: int = 500,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_response_bytes: int = 16 * 1024 * 1024,
        headers: Mapping[str, str] | None = None,
        proxies: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url) if isinstance(base_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("base_url must not have a query or fragment")
        for name, value, minimum in (("batch_size", batch_size, 1), ("retries", retries, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an int >= {minimum}")
        if not isinstance(max_response_bytes, int) or max_response_bytes < 1:
            raise ValueError("max_response_bytes must be a positive int")
        if not timeout > 0 or not backoff >= 0:
            raise ValueError("timeout must be > 0 and backoff >= 0")
        self.url = base_url.rstrip("/") + "/lookup"
        self.batch_size = batch_size
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self.max_response_bytes = max_response_bytes
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            **dict(headers or {}),
        }
        proxy_handler = urllib.request.ProxyHandler(None if proxies is None else dict(proxies))
        self._opener = urllib.request.build_opener(proxy_handler, _NoRedirect())
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HttpRegistry({self.url!r}, batch_size={self.batch_size})"

    def lookup(self, citizen_ids: Sequence[str]) -> Mapping[str, RegistryEntry]:
        """Look the IDs up in batches of at most ``batch_size`` (duplicates asked once); absent = not found."""
        ids = _check_ids(citizen_ids)
        found: dict[str, RegistryEntry] = {}
        batches = [ids[i : i + self.batch_size] for i in range(0, len(ids), self.batch_size)]
        for number, batch in enumerate(batches, start=1):
            found.update(self._lookup_batch(batch, number=number, of=len(batches)))
        return MappingProxyType(found)

    def _lookup_batch(self, batch: list[str], *, number: int, of: int) -> dict[str, RegistryEntry]:
        body = self._post(json.dumps({"ids": batch}).encode("utf-8"), number=number, of=of)
        return self._parse(body, asked=frozenset(batch))

    def _post(self, body: bytes, *, number: int, of: int) -> bytes:
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                logger.warning(
                    "registry batch %d/%d: %s; retry %d/%d in %.2fs",
                    number,
                    of,
                    last,
                    attempt,
                    self.retries,
                    delay,
                )
                self._sleep(delay)
            # the scheme is checked in __init__ (http/https only)
            request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")  # noqa: S310
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    status = response.status
                    data: bytes = response.read(self.max_response_bytes + 1)
            except urllib.error.HTTPError as e:
                e.close()
                if e.code >= 500 or e.code in _RETRYABLE_4XX:
                    last = f"HTTP {e.code}"
                    continue
                raise PipelineError(
                    f"registry refused batch {number}/{of} ({len(body)} bytes): HTTP {e.code}",
                    code=REGISTRY_REJECTED,
                ) from None
            except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets, bad status lines
                last = _describe(e)
                continue
            if status != 200:
                raise PipelineError(
                    f"registry answered HTTP {status}, expected 200", code=REGISTRY_BAD_RESPONSE
                )
            if len(data) > self.max_response_bytes:
                raise PipelineError(
                    f"registry answer exceeds {self.max_response_bytes} bytes", code=REGISTRY_BAD_RESPONSE
                )
            logger.debug(
                "registry batch %d/%d: %d bytes after %d attempt(s)", number, of, len(data), attempt + 1
            )
            return data
        raise PipelineError(
            f"registry unavailable: batch {number}/{of} failed {self.retries + 1} time(s), last: {last}",
            code=REGISTRY_UNAVAILABLE,
        )

    @staticmethod
    def _parse(body: bytes, *, asked: frozenset[str]) -> dict[str, RegistryEntry]:
        def bad(why: str) -> PipelineError:
            return PipelineError(f"registry answer is invalid: {why}", code=REGISTRY_BAD_RESPONSE)

        try:
            document = json.loads(body.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise bad(f"not JSON ({type(e).__name__})") from None
        if not isinstance(document, dict) or not isinstance(document.get("results"), list):
            raise bad('expected an object with a "results" list')
        found: dict[str, RegistryEntry] = {}
        for index, item in enumerate(document["results"]):
            if not isinstance(item, dict):
                raise bad(f"results[{index}] is not an object")
            try:
                entry = RegistryEntry.from_fields(item)
            except PipelineError as e:
                raise bad(f"results[{index}]: {e.message}") from None
            if entry.citizen_id not in asked:
                raise bad(f"results[{index}] is for an ID that was not asked for")
            if entry.citizen_id in found:
                raise bad(f"results[{index}] repeats an ID")
            found[entry.citizen_id] = entry
        return found


def _describe(error: BaseException) -> str:
    """A log-safe description of a transport error (its type and, for URLError, the reason's type)."""
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        return f"{type(error).__name__}({type(error.reason).__name__})"
    if isinstance(error, TimeoutError):
        return "timeout"
    return type(error).__name__
