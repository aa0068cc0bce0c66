"""Migration 0007 (persons lose ``ix_persons_province_code``) on both backends, from 0006 with rows present."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa

from vaxcred.pipeline.records.importer import import_lines
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import TableRegistry
from vaxcred.pipeline.synthetic import SyntheticPerson, generate_people
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons

NOW = dt.datetime(2023, 1, 9, 8, 0, tzinfo=dt.UTC)
PEOPLE = tuple(generate_people(40, seed=7))


def _lines(people: tuple[SyntheticPerson, ...]) -> list[str]:
    return [
        json.dumps(row.to_fields(), ensure_ascii=False) + "\n" for person in people for row in person.rows
    ]


def _person_indexes(db: Database) -> set[str]:
    return {index["name"] or "" for index in sa.inspect(db.engine).get_indexes("persons")}


def _stored(db: Database) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with db.connect() as conn:
        return (
            [tuple(r) for r in conn.execute(sa.select(persons).order_by(persons.c.id))],
            [tuple(r) for r in conn.execute(sa.select(doses).order_by(doses.c.id))],
        )


def test_0007_drops_the_persons_province_index_and_keeps_every_row(empty_database: Database) -> None:
    """A database at 0006 holding imported and checked persons, upgraded: the index is gone, every person and
    dose is as it was, and the import and the registry check go on from where they stopped."""
    db = empty_database
    db.migrate("0006")
    assert "ix_persons_province_code" in _person_indexes(db)
    first, rest = PEOPLE[:25], PEOPLE[25:]
    assert import_lines(db, _lines(first), format="jsonl", today=NOW.date()).rejected == 0
    registry = TableRegistry(p.entry for p in PEOPLE if p.entry is not None)
    assert run_registry_check(db, registry, now=NOW).checked == len(first)
    before = _stored(db)

    db.migrate("0007")

    assert db.current_revision() == "0007"
    indexes = _person_indexes(db)
    assert "ix_persons_province_code" not in indexes
    assert "ix_persons_registry_status_id" in indexes
    assert _stored(db) == before
    report = import_lines(db, _lines(PEOPLE), format="jsonl", today=NOW.date())
    assert report.imported == sum(len(p.rows) for p in rest)
    assert run_registry_check(db, registry, now=NOW).checked == len(rest)
    with db.connect() as conn:
        provinces = conn.execute(
            sa.select(sa.func.count()).select_from(persons).where(persons.c.province_code.is_not(None))
        ).scalar_one()
    assert provinces == sum(1 for p in PEOPLE if p.rows[0].person.id_type.value == "CCCD")
