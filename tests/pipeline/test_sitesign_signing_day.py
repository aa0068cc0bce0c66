"""Signing a batch: Viet Nam's calendar day at the signing time, which its doses are checked against, is kept per
signing time (site_signing.steps._signing_day), so another signing time in the same process uses its own day; the
members' salts, read for the whole batch at once, are each member's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from vaxcred import keys
from vaxcred.codec import cbor
from vaxcred.crypto import Signer
from vaxcred.errors import VaxcredError
from vaxcred.pipeline.records.model import DoseRecord
from vaxcred.pipeline.site_signing.batch import BatchMember, sign_batch

CA_TIME = datetime(2021, 1, 1, tzinfo=UTC)
#: 2021-10-01 16:59:59 UTC is 23:59:59 on 1 October in Viet Nam; a second later it is 2 October there
BEFORE_MIDNIGHT = datetime(2021, 10, 1, 16, 59, 59, tzinfo=UTC)
AFTER_MIDNIGHT = BEFORE_MIDNIGHT + timedelta(seconds=1)


@pytest.fixture(scope="module")
def signer() -> Signer:
    site_ca = keys.make_site_ca(now=CA_TIME)
    return keys.make_site_certificate(site_ca, site_id="HN-001", site_name="Trạm Y tế", now=CA_TIME).signer()


def _outcome(signer: Signer, now: datetime) -> BatchMember | VaxcredError:
    dose = DoseRecord(
        citizen_id="001090012345",
        vaccine="Comirnaty",
        lot="FK1234",
        date="2021-10-02",
        dose_number=1,
        site_id="HN-001",
    )
    return sign_batch([dose], signer=signer, now=now).outcomes[0]


def test_a_dose_of_tomorrow_in_viet_nam_is_refused_at_each_signing_time_on_its_own(signer: Signer) -> None:
    """Alternating signing times either side of Viet Nam's midnight: each is judged by its own day."""
    for _ in range(2):
        before = _outcome(signer, BEFORE_MIDNIGHT)
        assert isinstance(before, VaxcredError)
        assert before.code == "sitesign.bad_record"
        assert isinstance(_outcome(signer, AFTER_MIDNIGHT), BatchMember)
    # the same instant written in another time zone is the same day
    same = BEFORE_MIDNIGHT.astimezone(timezone(timedelta(hours=-5)))
    assert isinstance(_outcome(signer, same), VaxcredError)


def test_every_member_of_a_batch_has_its_own_salt(signer: Signer) -> None:
    """Salts are read for a whole batch at once, then cut: each member's is 16 bytes and no two are equal
    (also for members after a refused dose)."""
    dose = DoseRecord(
        citizen_id="001090012345",
        vaccine="Comirnaty",
        lot="FK1234",
        date="2021-09-02",
        dose_number=1,
        site_id="HN-001",
    )
    refused = DoseRecord(
        citizen_id="001090012345",
        vaccine="Comirnaty",
        lot="FK1234",
        date="2021-10-05",
        dose_number=2,
        site_id="HN-001",
    )
    batch = sign_batch([dose, refused, *[dose] * 40], signer=signer, now=AFTER_MIDNIGHT)
    members = [o for o in batch.outcomes if isinstance(o, BatchMember)]
    assert len(members) == 41
    salts = [cbor.loads(m.payload)["salt"] for m in members]  # type: ignore[index]
    assert all(isinstance(s, bytes) and len(s) == 16 for s in salts)
    assert len(set(salts)) == len(salts)
