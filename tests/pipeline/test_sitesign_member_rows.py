"""Storing a transaction's batch members (site_signing.member_rows): on PostgreSQL the signing time every member
shares is bound once as a scalar, the other columns as binary arrays written by storage.pg_arrays; a
transaction whose members differ in it binds every column as an array. Both store the same rows; the arrays
read back exactly as written."""

from __future__ import annotations

import datetime as dt
import struct

import pytest
import sqlalchemy as sa

from tests.pipeline.test_site_signing import (
    KEYED,
    NOW,
    checked,  # noqa: F401 - fixture
    signers,  # noqa: F401 - fixture
    site_ca,  # noqa: F401 - fixture
    site_keys,  # noqa: F401 - fixture
)
from vaxcred import keys
from vaxcred.crypto import Signer
from vaxcred.pipeline.log import Kind, build_entries
from vaxcred.pipeline.site_signing.member_rows import (
    _postgres_parameters,
    _postgres_sql,
    insert_certificates,
    insert_heads,
)
from vaxcred.pipeline.site_signing.sign_rows import _certificate_row, _sign_rows, _Signed
from vaxcred.pipeline.site_signing.stage import verify_stored_signatures
from vaxcred.pipeline.site_signing.store import _store_batch
from vaxcred.pipeline.site_signing.work_queue import _DoseRow, _queue_rows, _to_sign
from vaxcred.pipeline.site_signing.workers import _recheck
from vaxcred.storage import Database
from vaxcred.storage.pg_arrays import bigint_array, bytea_array, integer_array, register
from vaxcred.storage.schema import issuance_log, site_certificates, site_signature_batches, site_signatures

_WHEN = dt.datetime(2023, 1, 2, tzinfo=dt.UTC)


def _row(dose_id: int, when: dt.datetime = _WHEN) -> tuple[object, ...]:
    return (dose_id, b"payload", when, 7, dose_id, b"path")


def test_shared_columns_are_bound_once_only_when_every_row_shares_them() -> None:
    """A scalar for the signing time when all rows agree (placeholders and parameters line up), the other
    columns as binary arrays; arrays of every column as soon as one row differs in it."""
    shared, parameters = _postgres_parameters([_row(1), _row(2)])
    assert shared
    assert parameters == (
        _WHEN,
        bigint_array([1, 2]),
        bytea_array([b"payload"] * 2),
        bigint_array([7, 7]),
        integer_array([1, 2]),
        bytea_array([b"path"] * 2),
    )
    assert _postgres_sql(skip_signed=False, shared=True).count("%b") == len(parameters)
    shared, parameters = _postgres_parameters([_row(1), _row(2, when=_WHEN + dt.timedelta(seconds=1))])
    assert not shared
    assert len(parameters) == 6
    assert parameters[2] == [_WHEN, _WHEN + dt.timedelta(seconds=1)]
    assert _postgres_sql(skip_signed=False, shared=False).count("%b") == len(parameters)


def test_two_sites_members_stored_in_one_transaction_verify_and_log_as_read_back(
    checked: Database,  # noqa: F811 - fixture
    signers: dict[str, Signer],  # noqa: F811 - fixture
    site_ca: keys.KeyPair,  # noqa: F811 - fixture
) -> None:
    """Rows of two sites in one store (no shared columns: every column an array on PostgreSQL) are stored as
    signed: each verifies from the stored bytes, and each batch's log entry is what the rows read back give."""
    db = checked.for_batches()
    with db.connect() as conn:
        rows = [row for site in KEYED for row in _queue_rows(conn, site, 0, 5)]
    assert {row.site_id for row in rows} == set(KEYED)
    outcomes = _sign_rows(rows, signers, NOW, 4)
    assert all(isinstance(o, _Signed) for o in outcomes)
    certificates = {site: _certificate_row(signer) for site, signer in signers.items()}
    with db.begin() as conn:
        added, failed = _store_batch(db, conn, rows, outcomes, certificates)
    assert (added, failed) == (len(rows), 0)
    results = verify_stored_signatures(checked, site_ca=site_ca.certificate, now=NOW)
    assert sorted(r.dose_id for r in results) == sorted(row.id for row in rows)
    assert all(r.ok for r in results)
    with checked.connect() as conn:
        stored = conn.execute(
            sa.select(site_signatures.c.dose_id, site_signature_batches.c.site_id).join(
                site_signature_batches, site_signature_batches.c.id == site_signatures.c.batch_id
            )
        ).all()
        assert sorted(stored) == sorted((row.id, row.site_id) for row in rows)
        logged = dict(
            conn.execute(
                sa.select(issuance_log.c.object_id, issuance_log.c.entry).where(
                    issuance_log.c.kind == Kind.DOSE_BATCH.value
                )
            ).all()
        )
        assert len(logged) == 4  # 5 rows of each site, 4 a head: 2 heads each
        assert logged == build_entries(conn, Kind.DOSE_BATCH, list(logged))


def test_queue_reads_through_the_driver_give_the_rows_sqlalchemy_gives(
    checked: Database,  # noqa: F811 - fixture
) -> None:
    """The work-queue and recheck reads (PostgreSQL: compiled once, run through the driver) return exactly the
    rows, values and types of the SQLAlchemy statement, locked or not, batch after batch."""
    with checked.begin() as conn:
        for site in KEYED:
            expected = [_DoseRow(*row) for row in conn.execute(_to_sign(site, 0, 1000))]
            assert len(expected) > 10
            for lock in (False, True, False):
                assert _queue_rows(conn, site, 0, 1000, lock=lock) == expected
                assert _queue_rows(conn, site, expected[4].id, 3, lock=lock) == expected[5:8]
            got = _recheck(conn, expected, ["x"] * len(expected), {}, NOW, 4)
            assert got == (expected, ["x"] * len(expected))
            assert [(type(r.id), type(r.date), type(r.dose_number)) for r in got[0]] == [
                (int, dt.date, int)
            ] * len(expected)


def test_heads_get_their_own_ids_in_the_order_given(
    checked: Database,  # noqa: F811 - fixture
    signers: dict[str, Signer],  # noqa: F811 - fixture
) -> None:
    """insert_heads returns each head's own id, in the order the heads were given (PostgreSQL matches the ids
    returned to the heads by their bytes); insert_certificates stores a certificate once, however often given."""
    site = KEYED[0]
    certificate = _certificate_row(signers[site])
    values = [
        (site, certificate["fingerprint"], signers[site].kid, bytes([i]) * (40 - i), i + 1, NOW)
        for i in (3, 0, 4, 1, 2)
    ]
    with checked.for_batches().begin() as conn:
        insert_certificates(checked, conn, [certificate])
        insert_certificates(checked, conn, [certificate])
        ids = insert_heads(conn, values)
        stored = conn.execute(
            sa.select(
                site_signature_batches.c.id,
                site_signature_batches.c.head,
                site_signature_batches.c.size,
                site_signature_batches.c.signed_at,
            )
        ).all()
        certificates = conn.execute(sa.select(sa.func.count()).select_from(site_certificates)).scalar_one()
    assert len(set(ids)) == len(values)
    by_id = {row.id: (row.head, row.size, row.signed_at) for row in stored}
    assert [by_id[i] for i in ids] == [(v[3], v[4], NOW) for v in values]
    assert certificates == 1


def test_binary_arrays_read_back_as_written(pg_database: Database) -> None:
    """Each array type's bytes are what the server reads: the extremes of each integer type, an empty, a long
    and a zero-filled bytea come back equal; a value outside the type is refused before anything is sent."""
    bigints = [-(2**63), -1, 0, 1, 2**63 - 1]
    integers = [-(2**31), 0, 7, 2**31 - 1]
    blobs = [b"", b"\x00\xff", bytes(5000), b"payload"]
    with pg_database.connect() as conn:
        register(conn.connection.driver_connection)
        got = conn.exec_driver_sql(
            "SELECT %b::bigint[], %b::integer[], %b::bytea[], cardinality(%b::bytea[])",
            (bigint_array(bigints), integer_array(integers), bytea_array(blobs), bytea_array([b"x"])),
        ).one()
    assert list(got) == [bigints, integers, blobs, 1]
    with pytest.raises(struct.error):
        bigint_array([2**63])
    with pytest.raises(struct.error):
        integer_array([2**31])
