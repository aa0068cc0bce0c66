"""The issuance commit's bulk INSERTs (vaxcred.storage.bulk) on both backends: they store exactly what
SQLAlchemy's INSERT stores, page by page, and skip conflicting rows like ``ON CONFLICT DO NOTHING``."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxcred.storage import Database, bulk
from vaxcred.storage.bulk import insert_rows, stored_time
from vaxcred.storage.schema import UtcDateTime

_META = sa.MetaData()


def _twin(name: str) -> sa.Table:
    table = sa.Table(
        name,
        _META,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("blob", sa.LargeBinary, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("maybe", sa.Integer, nullable=True),
    )
    sa.Index(
        f"uq_{name}_active",
        table.c.person_id,
        unique=True,
        sqlite_where=table.c.status == "ACTIVE",
        postgresql_where=table.c.status == "ACTIVE",
    )
    return table


BULK = _twin("bulk_rows")
ORM = _twin("orm_rows")
COLUMNS = ("person_id", "text", "blob", "at", "status", "maybe")
CONFLICT = "ON CONFLICT (person_id) WHERE status = 'ACTIVE' DO NOTHING"

_TZ = dt.timezone(dt.timedelta(hours=7))
ROWS = [
    (1, "Nguyễn Thị Minh Khai", b"\x00\xff", dt.datetime(2026, 6, 1, 0, 0, tzinfo=dt.UTC), "ACTIVE", None),
    (2, "HC1:6BF…", b"", dt.datetime(2026, 6, 1, 7, 30, 5, 123456, tzinfo=_TZ), "ACTIVE", 7),
    (3, "", bytes(range(256)), dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC), "REVOKED", 0),
]


@pytest.fixture
def tables(database: Database) -> Database:
    _META.create_all(database.engine)
    return database


def _stored(db: Database, table: sa.Table) -> list[tuple[object, ...]]:
    with db.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.select(*(table.c[c] for c in COLUMNS)).order_by(table.c.person_id, table.c.id)
            )
        ]


def _as_dicts(rows: list[tuple[object, ...]]) -> list[dict[str, object]]:
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


def _bound(conn: sa.Connection, rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return [(*row[:3], stored_time(conn, row[3]), *row[4:]) for row in rows]  # type: ignore[arg-type]


def test_bulk_rows_read_back_as_sqlalchemy_stores_them(tables: Database) -> None:
    """Every value type the commit binds (int, text, bytes, aware time in any zone, NULL) reads back the same."""
    with tables.begin() as conn:
        returned = insert_rows(conn, BULK, COLUMNS, _bound(conn, ROWS), returning=("person_id",))
        conn.execute(sa.insert(ORM), _as_dicts(ROWS))
    assert sorted(int(r[0]) for r in returned) == [1, 2, 3]  # type: ignore[call-overload]
    stored = _stored(tables, BULK)
    assert stored == _stored(tables, ORM)
    assert stored[1][3] == dt.datetime(2026, 6, 1, 0, 30, 5, 123456, tzinfo=dt.UTC)


def test_bulk_times_compare_with_sqlalchemy_bound_times(tables: Database) -> None:
    """A time stored by the bulk INSERT orders against a time SQLAlchemy binds (SQLite keeps them as text)."""
    with tables.begin() as conn:
        insert_rows(conn, BULK, COLUMNS, _bound(conn, ROWS))
    cut = dt.datetime(2026, 6, 1, 0, 0, tzinfo=dt.UTC)
    with tables.connect() as conn:
        found = conn.execute(sa.select(BULK.c.person_id).where(BULK.c.at >= cut).order_by(BULK.c.person_id))
        assert list(found.scalars()) == [1, 2]
        exact = conn.execute(sa.select(BULK.c.person_id).where(BULK.c.at == cut)).scalars().all()
        assert exact == [1]


def test_bulk_conflicts_are_skipped_and_not_returned(tables: Database) -> None:
    """``ON CONFLICT … DO NOTHING``: a person with an ACTIVE row keeps it; only inserted rows come back."""
    with tables.begin() as conn:
        insert_rows(conn, BULK, COLUMNS, _bound(conn, ROWS[:1]))
        again = [(1, "second", b"", ROWS[0][3], "ACTIVE", None), (4, "new", b"", ROWS[0][3], "ACTIVE", None)]
        returned = insert_rows(
            conn, BULK, COLUMNS, _bound(conn, again), on_conflict=CONFLICT, returning=("id", "person_id")
        )
    assert [int(r[1]) for r in returned] == [4]  # type: ignore[call-overload]
    assert [row[1] for row in _stored(tables, BULK)] == ["Nguyễn Thị Minh Khai", "new"]


def test_bulk_pages_store_and_return_every_row(tables: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows past one statement's parameter limit go in further pages, none lost, every id returned."""
    monkeypatch.setattr(bulk, "MAX_PARAMETERS", 6 * 4)  # 4 rows a page
    at = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    rows = [(i, f"p{i}", b"x", at, "ACTIVE", i) for i in range(1, 11)]
    with tables.begin() as conn:
        returned = insert_rows(conn, BULK, COLUMNS, _bound(conn, rows), returning=("person_id",))
    assert sorted(int(r[0]) for r in returned) == list(range(1, 11))  # type: ignore[call-overload]
    assert [row[0] for row in _stored(tables, BULK)] == list(range(1, 11))


def test_bulk_refuses_unknown_columns_and_ragged_rows(tables: Database) -> None:
    """Column names become SQL text: only the table's own are accepted; every row has one value per column."""
    with tables.begin() as conn:
        with pytest.raises(ValueError, match="no column"):
            insert_rows(conn, BULK, ("person_id", "text; DROP TABLE bulk_rows"), [(1, "x")])
        with pytest.raises(ValueError, match="no column"):
            insert_rows(conn, BULK, COLUMNS, [], returning=("nope",))
        with pytest.raises(ValueError, match="6 values"):
            insert_rows(conn, BULK, COLUMNS, [(1, "x")])
        assert insert_rows(conn, BULK, COLUMNS, []) == []


def test_stored_time_refuses_a_naive_time(database: Database) -> None:
    """A time without a zone is a caller mistake, as for the schema's UtcDateTime."""
    with database.connect() as conn, pytest.raises(ValueError, match="naive"):
        stored_time(conn, dt.datetime(2026, 6, 1))


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(
        min_value=dt.datetime(1, 1, 2),
        max_value=dt.datetime(9999, 12, 30),
        timezones=st.sampled_from([dt.UTC, _TZ, dt.timezone(dt.timedelta(hours=-9, minutes=-30))]),
    )
)
def test_stored_time_is_sqlalchemys_sqlite_text(moment: dt.datetime) -> None:
    """On SQLite the text bound is what SQLAlchemy's DATETIME binds for the same instant (so it sorts with it)."""
    from sqlalchemy.dialects import sqlite

    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        expected = sqlite.DATETIME().bind_processor(sqlite.dialect())(  # type: ignore[misc]
            moment.astimezone(dt.UTC).replace(tzinfo=None)
        )
        assert stored_time(conn, moment) == expected


@pytest.mark.parametrize("ids", [[], [2], [3, 1], [1, 2, 3, 10**6], list(range(-5, 2000))])
def test_among_selects_what_in_selects(tables: Database, ids: list[int]) -> None:
    """``among`` (PostgreSQL: ``= ANY(array)``, one parameter) selects exactly the rows ``IN`` selects."""
    from vaxcred.storage.bulk import among

    with tables.begin() as conn:
        insert_rows(conn, BULK, COLUMNS, _bound(conn, ROWS))
        found = conn.execute(sa.select(BULK.c.person_id).where(among(conn, BULK.c.person_id, ids))).scalars()
        expected = conn.execute(sa.select(BULK.c.person_id).where(BULK.c.person_id.in_(ids))).scalars()
        assert sorted(found) == sorted(expected) == sorted({1, 2, 3} & set(ids))


def test_among_sends_one_parameter(tables: Database) -> None:
    """The point of ``among``: a thousand ids are one bound parameter (PostgreSQL an array, SQLite a JSON array
    read by ``json_each``), not a thousand, so the statement's text is the same for every batch."""
    from vaxcred.storage.bulk import among

    with tables.connect() as conn:
        query = sa.select(BULK.c.id).where(among(conn, BULK.c.person_id, range(1000)))
        compiled = query.compile(conn, compile_kwargs={"render_postcompile": True})
        sql = str(compiled)
    assert len(compiled.params) == 1
    if tables.backend == "postgresql":
        assert "= ANY (%(param_1)s::BIGINT[])" in sql
    else:
        assert sql.count("?") == 1
        assert "json_each(?)" in sql


@pytest.mark.parametrize("ids", [[], [7], [5, 1, 3], list(range(3000, 0, -1)), [2**40]])
def test_id_rows_are_the_ids_in_the_order_given(database: Database, ids: list[int]) -> None:
    """``id_rows`` (one array parameter) yields each id once, as given: the claim upsert's rows, in its order."""
    from vaxcred.storage.bulk import id_rows

    with database.connect() as conn:
        rows = id_rows(conn, ids)
        query = sa.select(rows.c.value)
        assert [int(v) for v in conn.execute(query).scalars()] == ids
