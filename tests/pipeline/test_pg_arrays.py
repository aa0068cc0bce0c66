"""storage.pg_arrays: the batch stages' arrays built in PostgreSQL's binary format by the worker are read by the
real server as exactly the values psycopg's own list dumping sends (hypothesis: random values, NULLs, empty
arrays, the 64-bit limits, any text but NUL, instants in any time zone)."""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pipeline.pg import PostgresCluster
from vaxcred.storage import pg_arrays

_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

_INT8 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
_INSTANT = st.datetimes(
    min_value=dt.datetime(1900, 1, 1),
    max_value=dt.datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [dt.UTC, dt.timezone(dt.timedelta(hours=7)), dt.timezone(dt.timedelta(hours=-3, minutes=-30))]
    ),
)


@pytest.fixture(scope="module")
def conn(pg_cluster: PostgresCluster) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_cluster._conninfo(), autocommit=True) as connection:
        connection.execute("SET TIME ZONE 'UTC'")
        pg_arrays.register(connection)
        yield connection


def _both(
    conn: psycopg.Connection[Any], sql_type: str, built: bytes, values: Sequence[Any]
) -> tuple[Any, Any]:
    """What the server read from the built array, and from psycopg's own dumping of ``values``."""
    row = conn.execute(f"SELECT %b::{sql_type}, %b::{sql_type}", (built, list(values))).fetchone()
    assert row is not None
    return row[0], row[1]


def _check(
    conn: psycopg.Connection[Any], sql_type: str, build: Callable[[Any], bytes], values: list[Any]
) -> None:
    ours, psycopgs = _both(conn, sql_type, build(values), values)
    assert ours == psycopgs == values


@_SETTINGS
@given(values=st.lists(st.one_of(_INT8, st.none()), max_size=30) | st.lists(_INT8, max_size=300))
def test_int8_arrays(conn: psycopg.Connection[Any], values: list[int | None]) -> None:
    _check(conn, "bigint[]", pg_arrays.bigint_array, values)


@_SETTINGS
@given(values=st.lists(st.integers(min_value=-(2**31), max_value=2**31 - 1), max_size=300))
def test_int4_arrays(conn: psycopg.Connection[Any], values: list[int]) -> None:
    _check(conn, "integer[]", pg_arrays.integer_array, values)


@_SETTINGS
@given(values=st.lists(_TEXT, max_size=30))
def test_text_arrays(conn: psycopg.Connection[Any], values: list[str]) -> None:
    _check(conn, "text[]", pg_arrays.text_array, values)


@_SETTINGS
@given(values=st.lists(st.binary(max_size=80), max_size=30))
def test_bytea_arrays(conn: psycopg.Connection[Any], values: list[bytes]) -> None:
    _check(conn, "bytea[]", pg_arrays.bytea_array, values)


@_SETTINGS
@given(
    values=st.lists(_INSTANT, max_size=30)
    | st.lists(st.sampled_from([dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]), max_size=30)
)
def test_timestamptz_arrays(conn: psycopg.Connection[Any], values: list[dt.datetime]) -> None:
    _check(conn, "timestamptz[]", pg_arrays.timestamptz_array, values)


def test_the_limits_and_empty_arrays(conn: psycopg.Connection[Any]) -> None:
    """The 64-bit limits and NULLs; every type's empty array; a naive time or an out-of-range integer refused."""
    _check(conn, "bigint[]", pg_arrays.bigint_array, [-(2**63), 2**63 - 1, None, 0, -1])
    _check(conn, "bigint[]", pg_arrays.bigint_array, [None])
    for sql_type, build in (
        ("bigint[]", pg_arrays.bigint_array),
        ("integer[]", pg_arrays.integer_array),
        ("text[]", pg_arrays.text_array),
        ("bytea[]", pg_arrays.bytea_array),
        ("timestamptz[]", pg_arrays.timestamptz_array),
    ):
        assert conn.execute(f"SELECT %b::{sql_type}", (build([]),)).fetchone() == ([],)
    with pytest.raises(TypeError):
        pg_arrays.timestamptz_array([dt.datetime(2026, 1, 1)])
    with pytest.raises(struct.error):  # no 64-bit value
        pg_arrays.bigint_array([2**63])
    with pytest.raises(struct.error):  # no 32-bit value
        pg_arrays.integer_array([2**31])
