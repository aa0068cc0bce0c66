"""The EU gateway trust-list JSON: per-entry validation with reporting, document limits, round trip."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trust.certs import NOW, Issued, make_ca, make_leaf, store_of, trusted
from vaxcred.errors import TrustStoreError
from vaxcred.trust import (
    Environment,
    TrustMode,
    TrustStore,
    check_chain,
    export_gateway_trust_list,
    load_gateway_trust_list_unsafe_unauthenticated,
)
from vaxcred.trust import gateway as gateway_module


def entry(cert: Issued, cert_type: str = "DSC", country: str = "VN", **override: Any) -> dict[str, Any]:
    """A well-formed gateway entry, as the gateway serves it, with fields overridden."""
    digest = hashlib.sha256(cert.der).digest()
    value = {
        "kid": base64.b64encode(digest[:8]).decode(),
        "timestamp": "2021-06-01T10:15:30+02:00",
        "country": country,
        "certificateType": cert_type,
        "thumbprint": digest.hex(),
        "signature": "MIAGCSqGSIb3DQEHAqCAMIACAQE=",
        "rawData": base64.b64encode(cert.der).decode(),
    }
    value.update(override)
    return value


def load(entries: list[Any], environment: Environment = Environment.TST) -> gateway_module.GatewayTrustList:
    return load_gateway_trust_list_unsafe_unauthenticated(
        json.dumps(entries).encode(), environment=environment
    )


def test_loads_cscas_and_dscs(csca: Issued, dsc: Issued) -> None:
    """CSCA entries become cscas, DSC entries dscs, and the chain check works on the result."""
    result = load([entry(csca, "CSCA"), entry(dsc)], Environment.PROD)
    store = result.store
    assert result.rejected == ()
    assert store.environment is Environment.PROD
    assert store.mode is TrustMode.UNAUTHENTICATED
    assert store.cscas["VN"] == (csca.cert,)
    (candidate,) = store.candidates(hashlib.sha256(dsc.der).digest()[:8])
    assert candidate.country == "VN"
    assert candidate.source == "gateway"
    check_chain(candidate, store, NOW)


def test_kid_mismatch_rejects_entry_keeps_others(csca: Issued, dsc: Issued) -> None:
    """An entry whose kid is not SHA-256(rawData)[:8] is reported; good entries stay."""
    other = make_leaf(csca)
    bad_kid = entry(dsc, kid=entry(other)["kid"])
    result = load([entry(csca, "CSCA"), bad_kid, entry(other)])
    assert [(r.index, "kid" in r.reason) for r in result.rejected] == [(1, True)]
    assert len(result.store.all_dscs()) == 1
    assert result.store.all_dscs()[0].info.der == other.der


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"thumbprint": "00" * 32}, "thumbprint"),
        ({"thumbprint": "xyz"}, "thumbprint"),
        ({"kid": "not base64!"}, "kid"),
        ({"kid": None}, "kid"),
        ({"rawData": "AAAA====="}, "rawData"),
        ({"rawData": 12}, "rawData"),
        ({"country": "Viet Nam"}, "country"),
        ({"country": "vn"}, "country"),
        ({"timestamp": "2021-06-01 10:15:30"}, "timestamp"),
        ({"timestamp": "2021-13-01T10:15:30Z"}, "timestamp"),
        ({"signature": 5}, "signature"),
        ({"certificateType": None}, "certificateType"),
    ],
)
def test_malformed_entry_reported(dsc: Issued, override: dict[str, Any], words: str) -> None:
    """Each malformed field rejects its entry with a reason naming the field."""
    result = load([entry(dsc, **override)])
    (rejected,) = result.rejected
    assert rejected.index == 0
    assert words in rejected.reason
    assert result.store.all_dscs() == ()


def test_non_ascii_raw_data_is_a_rejected_entry(dsc: Issued) -> None:
    """rawData with a non-ASCII character rejects the entry instead of leaking base64's ValueError (atheris)."""
    result = load([entry(dsc, rawData="MIIC\u00e9AAA")])
    (rejected,) = result.rejected
    assert "rawData is not Base64" in rejected.reason


def test_non_ascii_kid_is_a_rejected_entry(dsc: Issued) -> None:
    """A kid with a non-ASCII character rejects the entry instead of leaking base64's ValueError."""
    result = load([entry(dsc, kid="T\u00e9ChVTYw8i8=")])
    (rejected,) = result.rejected
    assert "kid is not Base64" in rejected.reason


def test_upper_case_thumbprint_accepted(dsc: Issued) -> None:
    """The thumbprint is compared as a hex number: case does not matter."""
    result = load([entry(dsc, thumbprint=hashlib.sha256(dsc.der).hexdigest().upper())])
    assert result.rejected == ()


def test_garbage_certificate_with_matching_hashes_rejected() -> None:
    """rawData that is not a certificate is rejected even when kid and thumbprint match it."""
    junk = b"\x30\x03\x02\x01\x00"
    digest = hashlib.sha256(junk).digest()
    bad = {
        "kid": base64.b64encode(digest[:8]).decode(),
        "timestamp": "2021-06-01T10:15:30Z",
        "country": "VN",
        "certificateType": "CSCA",
        "thumbprint": digest.hex(),
        "signature": "",
        "rawData": base64.b64encode(junk).decode(),
    }
    result = load([bad, {**bad, "certificateType": "DSC"}])
    assert [r.index for r in result.rejected] == [0, 1]


def test_withdrawn_entry_skipped(dsc: Issued) -> None:
    """rawData null marks a withdrawn DSC: skipped, its kid listed, not an error."""
    withdrawn = entry(dsc, rawData=None)
    result = load([withdrawn])
    assert result.rejected == ()
    assert result.withdrawn == (withdrawn["kid"],)
    assert result.store.all_dscs() == ()


def test_other_certificate_types_ignored(csca: Issued, dsc: Issued) -> None:
    """AUTHENTICATION, UPLOAD and unknown types are ignored (counted, not rejected)."""
    result = load([entry(dsc, "AUTHENTICATION"), entry(dsc, "UPLOAD"), entry(dsc, "SOMETHING_NEW")])
    assert result.ignored == 3
    assert result.rejected == ()
    assert result.store.all_dscs() == ()


def test_entry_not_an_object_rejected(dsc: Issued) -> None:
    """Array members that are not objects are reported."""
    result = load([1, "x", None, [], entry(dsc)])
    assert [r.index for r in result.rejected] == [0, 1, 2, 3]
    assert len(result.store.all_dscs()) == 1


def test_entry_with_repeated_key_rejected(dsc: Issued) -> None:
    """An object repeating a key is ambiguous: that entry is rejected, the rest kept."""
    good = json.dumps(entry(dsc))
    repeated = good[:-1] + ', "country": "DE"}'
    result = load_gateway_trust_list_unsafe_unauthenticated(
        f"[{repeated}, {good}]".encode(), environment=Environment.TST
    )
    assert [(r.index, "country" in r.reason) for r in result.rejected] == [(0, True)]
    assert len(result.store.all_dscs()) == 1


@pytest.mark.parametrize(
    "document",
    [b"", b"not json", b"{}", b'{"kid": 1}', b"null", b"\xff\xfe[]", b"[NaN]", b"[1,]", b"[" * 100_000],
)
def test_malformed_document(document: bytes) -> None:
    """Non-JSON, non-array, invalid UTF-8, NaN, absurd nesting: TrustStoreError(trust.malformed)."""
    with pytest.raises(TrustStoreError) as info:
        load_gateway_trust_list_unsafe_unauthenticated(document, environment=Environment.TST)
    assert info.value.code == "trust.malformed"


def test_oversized_document() -> None:
    """A document over 50 MB is refused before parsing."""
    with pytest.raises(TrustStoreError) as info:
        load_gateway_trust_list_unsafe_unauthenticated(
            b" " * (gateway_module.MAX_GATEWAY_BYTES + 1), environment=Environment.TST
        )
    assert info.value.code == "trust.malformed"


def test_too_many_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    """More entries than the cap is a document-level error."""
    monkeypatch.setattr(gateway_module, "MAX_GATEWAY_ENTRIES", 2)
    with pytest.raises(TrustStoreError) as info:
        load_gateway_trust_list_unsafe_unauthenticated(b"[1, 2, 3]", environment=Environment.TST)
    assert info.value.code == "trust.malformed"


def test_empty_list_loads() -> None:
    """An empty array is an empty store."""
    result = load([])
    assert result.store.all_dscs() == ()
    assert not result.store.has_cscas


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_trust_store_error(data: bytes) -> None:
    """Whatever the bytes, the loader returns or raises TrustStoreError."""
    with contextlib.suppress(TrustStoreError):
        load_gateway_trust_list_unsafe_unauthenticated(data, environment=Environment.TST)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(
                ["kid", "timestamp", "country", "certificateType", "thumbprint", "signature", "rawData"]
            ),
            st.one_of(st.none(), st.integers(), st.text(max_size=20), st.sampled_from(["DSC", "CSCA", "VN"])),
        ),
        max_size=5,
    )
)
def test_random_entries_are_reported_not_raised(entries: list[dict[str, Any]]) -> None:
    """Arbitrary entry objects never escape as exceptions: they are rejected, ignored or withdrawn."""
    result = load(entries)
    assert len(result.rejected) + result.ignored + len(result.withdrawn) == len(entries)


def test_round_trip(csca: Issued, dsc: Issued) -> None:
    """export -> load gives the same store; exporting again gives the same bytes."""
    de_csca = make_ca("DE")
    de_dsc = make_leaf(de_csca, country="DE")
    store = store_of(
        [trusted(dsc), trusted(de_dsc, "DE"), trusted(make_leaf(csca))],
        [("VN", csca), ("DE", de_csca)],
        environment=Environment.ACC,
    )
    exported = export_gateway_trust_list(store, now=NOW)
    result = load_gateway_trust_list_unsafe_unauthenticated(exported, environment=Environment.ACC)
    assert result.rejected == ()
    again = result.store
    assert {(d.country, d.info.der) for d in again.all_dscs()} == {
        (d.country, d.info.der) for d in store.all_dscs()
    }
    assert set(again.all_cscas()) == set(store.all_cscas())
    assert export_gateway_trust_list(again, now=NOW) == exported


def test_export_format(csca: Issued, dsc: Issued) -> None:
    """Gateway field order and formats; the CMS signature is left empty (documented)."""
    exported = export_gateway_trust_list(store_of([trusted(dsc)], [("VN", csca)]), now=NOW)
    entries = json.loads(exported)
    assert [e["certificateType"] for e in entries] == ["CSCA", "DSC"]
    for item in entries:
        assert list(item) == [
            "kid",
            "timestamp",
            "country",
            "certificateType",
            "thumbprint",
            "signature",
            "rawData",
        ]
        assert item["timestamp"] == "2025-06-01T12:00:00Z"
        assert re.fullmatch(r"[A-Za-z0-9+/]{11}=", item["kid"])
        assert re.fullmatch(r"[0-9a-f]{64}", item["thumbprint"])
        assert item["signature"] == ""
    assert b" " not in exported


def test_export_leaves_out_dscs_without_country(csca: Issued) -> None:
    """A bare DSC with no known country cannot be written as a gateway entry."""
    store = TrustStore.from_dsc_certificates([make_leaf(csca, country=None).der])
    assert json.loads(export_gateway_trust_list(store, now=NOW)) == []


def test_export_naive_now_refused(csca: Issued) -> None:
    """now must be aware."""
    with pytest.raises(ValueError):
        export_gateway_trust_list(store_of(cscas=[("VN", csca)]), now=datetime(2025, 1, 1))


def test_csca_with_unknown_x509_version_is_rejected_not_raised() -> None:
    """A CSCA whose DER claims an unknown X.509 version is a rejected entry, never cryptography's
    InvalidVersion escaping (found by the signed-list bit-flip property)."""
    import base64
    import hashlib
    import json
    from pathlib import Path

    from cryptography import x509

    from vaxcred.trust import Environment, load_gateway_trust_list_unsafe_unauthenticated

    vector = (
        Path(__file__).resolve().parent.parent / "data" / "dgc-testdata" / "AT" / "2DCode" / "raw" / "1.json"
    )
    real = base64.b64decode(json.loads(vector.read_text())["TESTCTX"]["CERTIFICATE"])
    der = real.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x07", 1)  # version v3 -> "v8"
    with pytest.raises(x509.InvalidVersion):
        x509.load_der_x509_certificate(der)
    doc = [
        {
            "kid": base64.b64encode(hashlib.sha256(der).digest()[:8]).decode(),
            "timestamp": "2026-01-01T00:00:00+00:00",
            "country": "VN",
            "certificateType": "CSCA",
            "thumbprint": hashlib.sha256(der).hexdigest(),
            "signature": "",
            "rawData": base64.b64encode(der).decode(),
        }
    ]
    loaded = load_gateway_trust_list_unsafe_unauthenticated(
        json.dumps(doc).encode(), environment=Environment.TST
    )
    assert len(loaded.rejected) == 1
    assert not loaded.store.all_cscas()
