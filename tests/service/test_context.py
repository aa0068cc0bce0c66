"""VerifierContext: options checked against verify()'s signature, freshness, country passed on where it exists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.service.support import Chain
from vaxcred.result import Status
from vaxcred.service import DataSet, VerifierContext
from vaxcred.service import context as context_module
from vaxcred.trust import TrustStore

NOW = datetime(2026, 1, 10, tzinfo=UTC)


def test_unknown_verify_option_is_refused(chain: Chain) -> None:
    """A typo in a wired option fails at start-up, not on the first request."""
    with pytest.raises(ValueError, match="revocaton"):
        VerifierContext(trust=chain.store(), loaded_at=NOW, verify_options={"revocaton": object()})


@pytest.mark.parametrize("name", ["now", "image_decoder", "trust", "data"])
def test_per_request_arguments_cannot_be_fixed_by_the_context(chain: Chain, name: str) -> None:
    """The clock, the decoder and the input belong to the request."""
    with pytest.raises(ValueError, match=r"takes no argument|set per request"):
        VerifierContext(trust=chain.store(), loaded_at=NOW, verify_options={name: None})


def test_options_reach_verify(chain: Chain) -> None:
    """A max_trust_age option turns VALID into NEEDS_CHECK once the trust is older than it."""
    store = chain.store()
    plain = VerifierContext(trust=store, loaded_at=NOW)
    strict = VerifierContext(
        trust=store, loaded_at=NOW, verify_options={"max_trust_age": timedelta(minutes=30)}
    )
    hc1 = chain.valid()
    assert plain.verify(hc1, now=chain.now).status is Status.VALID
    # the store was issued an hour before: fresh under the default 72 hours, stale under 30 minutes
    assert strict.verify(hc1, now=chain.now).status is Status.NEEDS_CHECK
    assert strict.trust_is_fresh(chain.now) is False


def test_options_are_read_only(chain: Chain) -> None:
    options = {"skew": timedelta(seconds=5)}
    context = VerifierContext(trust=chain.store(), loaded_at=NOW, verify_options=options)
    options["skew"] = timedelta(days=1)
    assert context.verify_options["skew"] == timedelta(seconds=5)
    with pytest.raises(TypeError):
        context.verify_options["skew"] = timedelta(0)  # type: ignore[index]


def test_country_passed_only_where_verify_takes_it(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    """Feature detection: with a verify() that takes country it is passed; without, it is dropped."""
    seen: dict[str, object] = {}

    def fake_verify(data: object, trust: object, **kwargs: object) -> str:
        seen.update(kwargs)
        return "result"

    context = VerifierContext(trust=chain.store(), loaded_at=NOW)
    monkeypatch.setattr(context_module, "verify", fake_verify)
    monkeypatch.setattr(context_module, "_VERIFY_PARAMETERS", context_module._VERIFY_PARAMETERS | {"country"})
    context.verify("HC1:", now=NOW, country="DE")
    assert seen["country"] == "DE"
    seen.clear()
    monkeypatch.setattr(context_module, "_VERIFY_PARAMETERS", context_module._VERIFY_PARAMETERS - {"country"})
    context.verify("HC1:", now=NOW, country="DE")
    assert "country" not in seen


def test_trust_updated_at_prefers_the_signed_issue_time(chain: Chain) -> None:
    """The signed issue time when the store has one, else when it was loaded."""
    store = chain.store()
    assert VerifierContext(trust=store, loaded_at=NOW).trust_updated_at == store.issued_at
    bare = TrustStore.from_dsc_certificates([chain.dsc.certificate.public_bytes(Encoding.DER)])
    assert VerifierContext(trust=bare, loaded_at=NOW).trust_updated_at == NOW


def test_dataset_freshness() -> None:
    data = DataSet(name="revocation", updated_at=NOW, max_age=timedelta(hours=24), count=3)
    assert data.is_fresh(NOW + timedelta(hours=23)) is True
    assert data.is_fresh(NOW + timedelta(hours=25)) is False
    assert DataSet(name="rules").is_fresh(NOW) is None
    with pytest.raises(ValueError, match="aware"):
        DataSet(name="x", updated_at=datetime(2026, 1, 1))


def test_naive_loaded_at_is_refused(chain: Chain) -> None:
    with pytest.raises(ValueError, match="aware"):
        VerifierContext(trust=chain.store(), loaded_at=datetime(2026, 1, 1))
