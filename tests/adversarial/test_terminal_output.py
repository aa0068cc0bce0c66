"""Untrusted text never reaches a terminal raw: controls, ANSI, bidi, separators, zero-width characters, BOM.

Every human output goes through :mod:`vaxcred.text`; ``--json`` stays valid JSON that decodes to the very
same values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adversarial.signing import sign_claims
from tests.adversarial.strategies import UNSAFE_CHARS, hostile_claims
from tests.interop.payloads import DAY, NOW, sample_dcc
from vaxcred import keys
from vaxcred.cli import main
from vaxcred.text import is_terminal_safe, json_dumps_safe, terminal_safe

AT = (NOW + DAY).isoformat()

#: one representative of every class the issue names
NAMED = {
    "ESC (ANSI)": "\x1b[31m",
    "OSC title": "\x1b]0;x\x07",
    "NUL": "\x00",
    "CR": "\r",
    "LF": "\n",
    "BS": "\x08",
    "DEL": "\x7f",
    "C1 CSI": "\x9b",
    "C1 NEL": "\x85",
    "LRE": "\u202a",
    "RLO": "\u202e",
    "LRI": "\u2066",
    "PDI": "\u2069",
    "ALM": "\u061c",
    "LRM": "\u200e",
    "RLM": "\u200f",
    "LINE SEPARATOR": "\u2028",
    "PARAGRAPH SEPARATOR": "\u2029",
    "ZWSP": "\u200b",
    "ZWNJ": "\u200c",
    "ZWJ": "\u200d",
    "WORD JOINER": "\u2060",
    "BOM": "\ufeff",
    "SOFT HYPHEN": "\u00ad",
    "TAG A": "\U000e0041",
    "HANGUL FILLER": "\u3164",
}


def _raw_unsafe(text: str) -> list[str]:
    """The unsafe characters standing raw in ``text`` (layout newlines aside)."""
    return [ch for line in text.split("\n") for ch in line if not is_terminal_safe(ch)]


@pytest.fixture(scope="module")
def dsc_pem(dsc: keys.KeyPair, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dsc") / "dsc.pem"
    path.write_bytes(dsc.certificate.public_bytes(Encoding.PEM))
    return path


def _hostile_passport(dsc: keys.KeyPair, bad: str) -> tuple[str, dict[str, Any]]:
    dcc = sample_dcc().to_json()
    dcc["nam"]["fn"] = f"Nguy{bad}n"
    dcc["nam"]["gn"] = bad + "Văn"
    dcc["dob"] = "1990-05-17" + bad
    dcc["v"][0]["is"] = f"Ministry{bad}of Health"
    dcc["v"][0]["co"] = "VN" + bad
    iat = int(NOW.timestamp())
    return sign_claims(dsc, {1: "VN", 4: iat + 86400 * 30, 6: iat, -260: {1: dcc}}), dcc


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("bad", list(NAMED.values()), ids=list(NAMED))
def test_verify_details_shows_hostile_fields_escaped(
    dsc: keys.KeyPair, dsc_pem: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    """`verify --details`: signed fields holding the character print it as a visible escape, never raw."""
    hc1, _ = _hostile_passport(dsc, bad)
    code, out, err = _run(["verify", hc1, "--dsc", str(dsc_pem), "--at", AT, "--details"], capsys)
    assert code == 1  # the schema refuses the payload, but the officer still sees the fields
    assert _raw_unsafe(out + err) == []
    assert terminal_safe(bad) in out  # shown, as an escape: something is odd here


@pytest.mark.parametrize("bad", list(NAMED.values()), ids=list(NAMED))
def test_verify_json_stays_valid_and_exact(
    dsc: keys.KeyPair, dsc_pem: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    """`verify --json`: valid JSON with no raw unsafe character, decoding to exactly the signed values."""
    hc1, dcc = _hostile_passport(dsc, bad)
    code, out, _ = _run(["verify", hc1, "--dsc", str(dsc_pem), "--at", AT, "--json"], capsys)
    assert code == 1
    assert _raw_unsafe(out) == []
    document = json.loads(out)
    assert document["certificate"] == dcc
    assert document["holder"]["fn"] == dcc["nam"]["fn"]


def test_unreadable_input_name_is_escaped(capsys: pytest.CaptureFixture[str], dsc_pem: Path) -> None:
    """Usage errors quoting an argument (here --at) never print its control characters raw."""
    code, out, err = _run(
        ["verify", "HC1:X", "--dsc", str(dsc_pem), "--at", "\x1b]0;pwned\x07\u202e"], capsys
    )
    assert code == 3
    assert _raw_unsafe(out + err) == []


@settings(max_examples=300, deadline=None)
@given(st.text() | st.lists(st.sampled_from(UNSAFE_CHARS) | st.text(max_size=2)).map("".join))
def test_terminal_safe_output_is_always_safe(text: str) -> None:
    """terminal_safe() of any text holds no unsafe character, and leaves printable text unchanged."""
    shown = terminal_safe(text)
    assert is_terminal_safe(shown)
    if is_terminal_safe(text):
        assert shown == text


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(_json, st.sampled_from([None, 2]))
def test_json_dumps_safe_round_trips(value: Any, indent: int | None) -> None:
    """json_dumps_safe() is valid JSON of the same value with no raw unsafe character."""
    text = json_dumps_safe(value, indent=indent)
    assert json.loads(text) == value
    assert _raw_unsafe(text) == []


def test_json_dumps_safe_never_writes_nan() -> None:
    """Non-finite floats (CBOR allows them in a DCC) become strings: the output stays strict JSON."""
    text = json_dumps_safe({"dn": float("nan"), "sd": [float("inf"), float("-inf")]})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "dn": "NaN",
        "sd": ["Infinity", "-Infinity"],
    }


@settings(max_examples=40, deadline=None)
@given(claims=hostile_claims())
def test_human_output_of_any_signed_payload_is_safe(dsc: keys.KeyPair, claims: Any) -> None:
    """Whatever a trusted key signed, `verify --details` prints no raw unsafe character and --json parses."""
    from vaxcred.cli.verify import _print_human
    from vaxcred.trust import TrustStore
    from vaxcred.verify import verify

    store = TrustStore.from_dsc_certificates([dsc.certificate.public_bytes(Encoding.DER)])
    result = verify(sign_claims(dsc, claims), store, now=NOW + DAY)
    runner = CliRunner()
    with runner.isolation() as (stdout, _, _):
        _print_human(result, details=True)
    shown = stdout.getvalue().decode("utf-8")
    assert _raw_unsafe(shown) == []
    assert json.loads(json_dumps_safe(result.to_json()))["status"] == result.status.value


def test_rules_eval_prints_hostile_data_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`rules eval` over data holding controls and bidi: valid JSON, nothing raw (it printed them raw)."""
    hostile = "".join(NAMED.values())
    expression, data = tmp_path / "e.json", tmp_path / "d.json"
    expression.write_text(json.dumps({"var": "x"}), encoding="utf-8")
    data.write_text(json.dumps({"x": hostile}), encoding="utf-8")
    code, out, err = _run(["rules", "eval", str(expression), str(data)], capsys)
    assert code == 0, err
    assert _raw_unsafe(out + err) == []
    assert json.loads(out) == hostile
