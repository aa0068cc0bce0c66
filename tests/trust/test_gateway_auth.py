"""Authenticated EU gateway lists: every entry's CMS signature checked (CSCA/UPLOAD by the trust anchor, DSC
by the country's upload certificate); the unauthenticated opt-in; withdrawal wins; DSC hygiene."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trust.certs import (
    DAY,
    NOW,
    GatewayWorld,
    gateway_entry,
    make_ca,
    make_gateway_world,
    make_leaf,
)
from vaxcred.errors import TrustStoreError
from vaxcred.oids import EKU_VACCINATION, TRUST_LIST_EKU
from vaxcred.trust import (
    Environment,
    GatewayTrustList,
    TrustMode,
    check_chain,
    load_gateway_trust_list,
    load_gateway_trust_list_unsafe_unauthenticated,
)


@pytest.fixture(scope="module")
def world() -> GatewayWorld:
    return make_gateway_world()


_WORLD = make_gateway_world()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _load(entries: list[Any], world: GatewayWorld, **kwargs: Any) -> GatewayTrustList:
    return load_gateway_trust_list(
        json.dumps(entries).encode(),
        environment=Environment.PROD,
        anchors=[world.anchor.cert],
        now=NOW,
        **kwargs,
    )


def _reasons(loaded: GatewayTrustList) -> dict[int, str]:
    return {r.index: r.reason for r in loaded.rejected}


def test_properly_signed_list_loads_authenticated(world: GatewayWorld) -> None:
    """Upload, CSCA and DSC entries signed as the gateway signs them: all loaded, mode GATEWAY."""
    loaded = _load(world.entries(), world)
    assert loaded.rejected == ()
    store = loaded.store
    assert store.mode is TrustMode.GATEWAY
    assert store.mode.authenticated
    assert store.cscas["VN"] == (world.csca.cert,)
    (dsc,) = store.all_dscs()
    assert dsc.info.der == world.dsc.der
    check_chain(dsc, store, NOW)
    assert loaded.ignored == 1  # the UPLOAD entry authenticates, it is never trusted for passports


def test_unsigned_list_is_refused_when_authenticating(world: GatewayWorld) -> None:
    """A list none of whose entries carries a valid signature is refused as a whole (trust.unauthenticated;
    regression: it was taken as production trust)."""
    entries = [gateway_entry(world.csca, "CSCA"), gateway_entry(world.dsc)]  # signature ""
    with pytest.raises(TrustStoreError) as info:
        _load(entries, world)
    assert info.value.code == "trust.unauthenticated"
    assert "no CMS signature" in info.value.message


def test_unsigned_entries_beside_signed_ones_are_rejected(world: GatewayWorld) -> None:
    """In a partly signed list only the signed entries load; each unsigned one is reported."""
    extra = make_leaf(world.csca)
    loaded = _load([*world.entries(), gateway_entry(extra)], world)
    assert [d.info.der for d in loaded.store.all_dscs()] == [world.dsc.der]
    assert "no CMS signature" in _reasons(loaded)[3]


def test_rogue_chain_is_not_trusted(world: GatewayWorld) -> None:
    """A rogue CSCA and DSC added to a real list without the anchor's signature are rejected."""
    rogue_csca = make_ca("VN")
    rogue_dsc = make_leaf(rogue_csca)
    entries = [
        *world.entries(),
        gateway_entry(rogue_csca, "CSCA", signed_by=rogue_csca),
        gateway_entry(rogue_dsc, signed_by=rogue_csca),
    ]
    loaded = _load(entries, world)
    assert set(_reasons(loaded)) == {3, 4}
    assert [d.info.der for d in loaded.store.all_dscs()] == [world.dsc.der]
    assert loaded.store.cscas["VN"] == (world.csca.cert,)


def test_tampered_signature_rejected(world: GatewayWorld) -> None:
    """One flipped bit in the DSC entry's signature value: rejected, the rest kept."""
    entries = world.entries()
    raw = bytearray(base64.b64decode(entries[2]["signature"]))
    raw[-5] ^= 0x01
    entries[2]["signature"] = base64.b64encode(bytes(raw)).decode()
    loaded = _load(entries, world)
    assert list(_reasons(loaded)) == [2]
    assert loaded.store.all_dscs() == ()
    assert loaded.store.cscas["VN"] == (world.csca.cert,)


def test_signature_over_another_certificate_rejected(world: GatewayWorld) -> None:
    """A valid upload-key signature moved from another DSC's entry does not authenticate this one."""
    other = make_leaf(world.csca)
    entries = world.entries()
    entries[2]["signature"] = gateway_entry(other, signed_by=world.upload)["signature"]
    assert list(_reasons(_load(entries, world))) == [2]


def test_dsc_signed_by_another_countrys_upload_rejected(world: GatewayWorld) -> None:
    """A DSC entry filed under VN but signed by DE's upload certificate is rejected."""
    de_upload = make_leaf(world.anchor, cn="DE upload", country="DE", eku=None)
    entries = [
        *world.entries()[:2],
        gateway_entry(de_upload, "UPLOAD", "DE", signed_by=world.anchor),
        gateway_entry(world.dsc, signed_by=de_upload),
    ]
    assert list(_reasons(_load(entries, world))) == [3]


def test_upload_certificate_not_signed_by_the_anchor_cannot_vouch(world: GatewayWorld) -> None:
    """A self-made upload certificate (signed by itself, not the anchor) authenticates nothing."""
    fake_upload = make_ca("VN", cn="VN upload")
    entries = [
        gateway_entry(fake_upload, "UPLOAD", signed_by=fake_upload),
        gateway_entry(world.csca, "CSCA", signed_by=world.anchor),
        gateway_entry(world.dsc, signed_by=fake_upload),
    ]
    loaded = _load(entries, world)
    assert set(_reasons(loaded)) == {0, 2}
    assert loaded.store.all_dscs() == ()


def test_dsc_signed_by_the_anchor_itself_is_authenticated(world: GatewayWorld) -> None:
    """The anchor vouches for the upload keys, so a DSC entry it signs directly is authenticated too."""
    entries = [
        gateway_entry(world.csca, "CSCA", signed_by=world.anchor),
        gateway_entry(world.dsc, signed_by=world.anchor),
    ]
    assert [d.info.der for d in _load(entries, world).store.all_dscs()] == [world.dsc.der]


def test_csca_signed_by_an_upload_key_rejected(world: GatewayWorld) -> None:
    """CSCA entries need the trust anchor's signature; a country's upload key cannot add CSCAs."""
    entries = [*world.entries(), gateway_entry(make_ca("VN"), "CSCA", signed_by=world.upload)]
    assert list(_reasons(_load(entries, world))) == [3]


def test_garbage_signature_rejected_not_raised(world: GatewayWorld) -> None:
    """A signature that is not Base64, or Base64 of junk, is a rejected entry, never an exception."""
    entries = world.entries()
    entries[1]["signature"] = "not base64!"
    junk = base64.b64encode(b"\x30\x80junk").decode()
    entries.append(gateway_entry(make_leaf(world.csca), signature=junk))
    assert set(_reasons(_load(entries, world))) == {1, 3}


def test_no_anchor_refuses_the_list(world: GatewayWorld) -> None:
    """Without a pinned anchor the authenticated loader refuses (trust.unauthenticated), it never falls
    back to taking the list as is."""
    with pytest.raises(TrustStoreError) as info:
        load_gateway_trust_list(json.dumps(world.entries()).encode(), environment=Environment.PROD)
    assert info.value.code == "trust.unauthenticated"


def test_expired_anchor_refuses_the_list(world: GatewayWorld) -> None:
    """No trust anchor valid at now: the whole list is refused (trust.anchor_not_valid)."""
    old = make_ca("EU", not_before=NOW - 800 * DAY, not_after=NOW - DAY)
    with pytest.raises(TrustStoreError) as info:
        load_gateway_trust_list(b"[]", environment=Environment.PROD, anchors=[old.cert], now=NOW)
    assert info.value.code == "trust.anchor_not_valid"


def test_retrieved_at_is_the_last_update(world: GatewayWorld) -> None:
    """The caller's retrieval time becomes the store's last update; one in the future is refused."""
    loaded = _load(world.entries(), world, retrieved_at=NOW - DAY)
    assert loaded.store.issued_at == NOW - DAY
    with pytest.raises(TrustStoreError) as info:
        _load(world.entries(), world, retrieved_at=NOW + DAY)
    assert info.value.code == "trust.issued_in_future"


def test_unauthenticated_opt_in_is_marked_and_logged(
    world: GatewayWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """The unsafe loader reads an unsigned list, marks it UNAUTHENTICATED and logs a warning."""
    entries = [gateway_entry(world.csca, "CSCA"), gateway_entry(world.dsc)]
    with caplog.at_level(logging.WARNING, logger="vaxcred.trust"):
        loaded = load_gateway_trust_list_unsafe_unauthenticated(
            json.dumps(entries).encode(), environment=Environment.PROD
        )
    assert loaded.store.mode is TrustMode.UNAUTHENTICATED
    assert not loaded.store.mode.authenticated
    assert len(loaded.store.all_dscs()) == 1
    assert "UNAUTHENTICATED" in caplog.text


# --- withdrawal wins --------------------------------------------------------------------------------


@pytest.mark.parametrize("withdrawn_first", [True, False])
def test_withdrawal_wins_over_an_active_entry(world: GatewayWorld, withdrawn_first: bool) -> None:
    """A kid withdrawn in the same document as an active entry for it is not trusted, in either order
    (regression: the active entry stayed trusted)."""
    active = gateway_entry(world.dsc, signed_by=world.upload)
    withdrawn = {**active, "rawData": None, "signature": None}
    pair = [withdrawn, active] if withdrawn_first else [active, withdrawn]
    loaded = _load([*world.entries()[:2], *pair], world)
    assert loaded.store.all_dscs() == ()
    assert loaded.withdrawn == (active["kid"],)
    assert any("withdrawn" in reason for reason in _reasons(loaded).values())


def test_withdrawal_by_kid_only(world: GatewayWorld) -> None:
    """A withdrawal entry carrying only the kid (no thumbprint) still withdraws the DSC."""
    active = gateway_entry(world.dsc, signed_by=world.upload)
    withdrawn = {"kid": active["kid"], "country": "VN", "certificateType": "DSC", "rawData": None}
    loaded = _load([*world.entries()[:2], active, withdrawn], world)
    assert loaded.store.all_dscs() == ()


def test_withdrawn_csca_by_kid_is_not_trusted(world: GatewayWorld) -> None:
    """A CSCA withdrawn by kid alone in the same document is dropped too: its DSCs can no longer chain."""
    csca = gateway_entry(world.csca, "CSCA", signed_by=world.anchor)
    withdrawn = {"kid": csca["kid"], "country": "VN", "certificateType": "CSCA", "rawData": None}
    loaded = _load([*world.entries(), withdrawn], world)
    assert loaded.store.all_cscas() == ()


def test_withdrawal_in_unauthenticated_mode_too(world: GatewayWorld) -> None:
    """Withdrawal wins whatever the mode."""
    active = gateway_entry(world.dsc)
    document = json.dumps([active, {**active, "rawData": None}]).encode()
    loaded = load_gateway_trust_list_unsafe_unauthenticated(document, environment=Environment.TST)
    assert loaded.store.all_dscs() == ()


# --- hygiene: one key, one purpose ----------------------------------------------------------------------


def test_dsc_that_is_a_ca_rejected(world: GatewayWorld) -> None:
    """A DSC entry whose certificate is a CA is rejected (trust.dsc_is_ca), even properly signed."""
    ca_dsc = make_ca("VN", cn="DSC that is a CA")
    entries = [*world.entries(), gateway_entry(ca_dsc, signed_by=world.upload)]
    reasons = _reasons(_load(entries, world))
    assert list(reasons) == [3]
    assert "trust.dsc_is_ca" in reasons[3]


def test_dsc_with_trust_list_purpose_rejected(world: GatewayWorld) -> None:
    """A DSC carrying the trust-list EKU beside a DCC EKU is rejected (trust.dsc_dual_purpose)."""
    dual = make_leaf(world.csca, eku=(EKU_VACCINATION, TRUST_LIST_EKU))
    entries = [*world.entries(), gateway_entry(dual, signed_by=world.upload)]
    reasons = _reasons(_load(entries, world))
    assert list(reasons) == [3]
    assert "trust.dsc_dual_purpose" in reasons[3]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "certificateType": st.sampled_from(["CSCA", "DSC", "UPLOAD", "AUTHENTICATION"]),
                "country": st.sampled_from(["VN", "DE", "vn", ""]),
                "kid": st.text(max_size=16),
                "thumbprint": st.one_of(st.none(), st.text(max_size=70)),
                "signature": st.one_of(st.none(), st.text(max_size=40), st.binary(max_size=60).map(_b64)),
                "rawData": st.one_of(st.none(), st.binary(max_size=60).map(_b64)),
            }
        ),
        max_size=6,
    )
)
def test_random_entries_never_escape_the_authenticated_loader(entries: list[dict[str, Any]]) -> None:
    """Hostile entries under authentication: loaded, reported, or TrustStoreError; nothing else."""
    try:
        loaded = _load(entries, _WORLD)
    except TrustStoreError as e:
        assert e.code == "trust.unauthenticated"  # noqa: PT017 - the only document-level refusal here
        return
    assert loaded.store.all_dscs() == ()
    assert loaded.store.all_cscas() == ()


@pytest.mark.parametrize("field", ["rawData", "kid", "signature"])
def test_non_ascii_base64_fields_are_rejected_not_raised(world: GatewayWorld, field: str) -> None:
    """Non-ASCII text in a Base64 field is a rejected entry (regression: b64decode's ValueError escaped)."""
    entries = world.entries()
    entries.append(gateway_entry(make_leaf(world.csca), signed_by=world.upload, **{field: "é" * 8}))
    assert 3 in _reasons(_load(entries, world))
    document = json.dumps([gateway_entry(world.dsc, **{field: "é" * 8})]).encode()
    loaded = load_gateway_trust_list_unsafe_unauthenticated(document, environment=Environment.TST)
    assert len(loaded.rejected) + len(loaded.withdrawn) >= 1 or field == "signature"
