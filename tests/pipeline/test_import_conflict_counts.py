"""The import's conflict counts on both backends, through both of PostgreSQL's ways of counting them: from the
batch itself when every natural key in it is new, by comparing with the stored doses when one is not."""

from __future__ import annotations

import sqlalchemy as sa

from tests.pipeline.import_child import HEADER
from vaxcred.pipeline.records.importer import import_lines
from vaxcred.storage import Database
from vaxcred.storage.schema import doses, persons

ROW = "001090012345,{name},1990-05-17,M,{vaccine},{lot},2021-08-01,{number},HN-001\n"


def _row(
    name: str = "Nguyễn Văn Đức", vaccine: str = "Comirnaty", lot: str = "FK1234", number: int = 1
) -> str:
    return ROW.format(name=name, vaccine=vaccine, lot=lot, number=number)


def test_a_batch_of_new_keys_counts_its_conflicts_among_its_own_rows(database: Database) -> None:
    """One batch, every key new: a later row of the same person with another name is a person conflict, a later
    row of the same dose with another lot or vaccine a dose conflict; the first rows are what is stored."""
    text = HEADER + _row() + _row(name="Nguyễn Văn Đưc") + _row(lot="FK9999") + _row(vaccine="Spikevax")
    text += _row(number=2, lot="FK2222") + _row(number=2, lot="FK2222")

    report = import_lines(database, text.splitlines(True), format="csv")

    assert (report.rows, report.imported, report.duplicates) == (6, 2, 2)
    assert (report.person_conflicts, report.dose_conflicts) == (1, 2)
    with database.connect() as conn:
        assert conn.execute(sa.select(persons.c.full_name)).scalars().all() == ["Nguyễn Văn Đức"]
        stored = conn.execute(
            sa.select(doses.c.dose_number, doses.c.vaccine, doses.c.lot).order_by(doses.c.id)
        )
        assert stored.all() == [(1, "Comirnaty", "FK1234"), (2, "Comirnaty", "FK2222")]


def test_a_batch_with_stored_keys_compares_with_the_stored_doses(database: Database) -> None:
    """A second import mixing a stored key (twice with another lot: two conflicts with the stored dose, though
    the batch's rows of it agree; once as stored: a duplicate) and a new key (with its own in-batch conflict)."""
    import_lines(database, (HEADER + _row()).splitlines(True), format="csv")
    text = HEADER + _row(lot="FK9999") + _row(lot="FK9999") + _row()
    text += _row(number=3, lot="FK3333") + _row(number=3, lot="FK0000")
    text += _row(name="Nguyễn Văn Đưc", number=3, lot="FK3333")

    report = import_lines(database, text.splitlines(True), format="csv")

    assert (report.rows, report.imported, report.duplicates) == (6, 1, 2)
    assert (report.person_conflicts, report.dose_conflicts) == (1, 3)
    with database.connect() as conn:
        stored = conn.execute(sa.select(doses.c.dose_number, doses.c.lot).order_by(doses.c.id)).all()
    assert stored == [(1, "FK1234"), (3, "FK3333")]
