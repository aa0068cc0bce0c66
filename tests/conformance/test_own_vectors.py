"""vaxcred's own published vectors (``test_vectors/``, dgc-testdata format): every flag, and byte-for-byte
regeneration by ``scripts/make_test_vectors.py`` (fixed keys, fixed clock, deterministic signatures).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from vaxcred import qr
from vaxcred.conformance import FLAGS, run_vector
from vaxcred.result import StepResult

ROOT = Path(__file__).resolve().parents[2]
VECTOR_DIR = ROOT / "test_vectors"
GENERATOR = ROOT / "scripts" / "make_test_vectors.py"
VECTORS = sorted(VECTOR_DIR.glob("*/2DCode/raw/*.json"))
#: DESCRIPTION starts with "VALID:" or "INVALID [<the failing step code vaxcred reports>]:"
_STATUS = re.compile(r"^(VALID|INVALID \[([a-z0-9_]+\.[a-z0-9_]+)\]): ")


def _name(path: Path) -> str:
    return path.relative_to(VECTOR_DIR).as_posix()


def _load(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_vector_set_is_complete() -> None:
    """A lost file would silently shrink the suite: the count is fixed (update it with the generator)."""
    assert len(VECTORS) == 26


@pytest.mark.parametrize("path", VECTORS, ids=_name)
def test_vector_flags_agree(path: Path) -> None:
    """Every EXPECTED* flag agrees with vaxcred, the 2DCODE included; the step code is the documented one."""
    vector = _load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our own vectors carry no unknown keys
        outcome = run_vector(vector, picture_decoder=qr.decode_image)
    name = _name(path)
    assert outcome.flags, f"{name}: no EXPECTED* flags"
    for flag in outcome.flags:
        assert flag.actual is not None, f"{name} {flag.flag}: not evaluated ({flag.detail})"
        assert flag.agrees, f"{name} {flag.flag}: expected {flag.expected}, got {flag.actual} ({flag.detail})"

    ctx = vector["TESTCTX"]
    assert isinstance(ctx, dict)
    match = _STATUS.match(str(ctx["DESCRIPTION"]))
    assert match, f"{name}: DESCRIPTION must start with VALID: or INVALID [code]:"
    assert outcome.result is not None
    failed = [s.code for s in outcome.result.steps if s.result is StepResult.FAIL]
    if match.group(2) is None:
        assert failed == [], f"{name}: a valid vector failed {failed}"
    else:
        assert failed == [match.group(2)], f"{name}: expected exactly {match.group(2)}, failed {failed}"


@pytest.mark.parametrize("path", VECTORS, ids=_name)
def test_vector_layout(path: Path) -> None:
    """The dgc-testdata fields: TESTCTX complete, every flag known, the layers in order and consistent."""
    vector = _load(path)
    ctx = vector["TESTCTX"]
    assert isinstance(ctx, dict)
    assert set(ctx) == {"VERSION", "SCHEMA", "CERTIFICATE", "VALIDATIONCLOCK", "DESCRIPTION", "GATEWAY-ENV"}
    assert ctx["GATEWAY-ENV"] == "TST"
    flags = vector["EXPECTEDRESULTS"]
    assert isinstance(flags, dict)
    assert set(flags) <= set(FLAGS)
    assert all(isinstance(v, bool) for v in flags.values())
    assert ("2DCODE" in vector) == ("EXPECTEDPICTUREDECODE" in flags)
    assert vector["PREFIX"] == "HC1:" + str(vector["BASE45"])


def test_the_readme_lists_every_vector_and_warns_about_the_keys() -> None:
    readme = (VECTOR_DIR / "README.md").read_text(encoding="utf-8")
    for path in VECTORS:
        assert f"`{_name(path)}`" in readme
    assert "PUBLIC TEST KEYS" in readme
    assert (VECTOR_DIR / "LICENSE").is_file()


def test_private_keys_are_named_and_marked_as_test_only() -> None:
    """Every private key in test_vectors/ is a *.TEST-ONLY.key.pem that says so before the PEM block."""
    for path in sorted(VECTOR_DIR.rglob("*")):
        if not path.is_file() or path.suffix != ".pem":
            continue
        text = path.read_text(encoding="ascii")
        if "PRIVATE KEY-----" in text:
            assert path.name.endswith(".TEST-ONLY.key.pem"), path
            assert text.startswith("PUBLIC TEST KEY"), path
        else:
            assert text.startswith("-----BEGIN CERTIFICATE-----"), path


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    """``make vectors`` into a temporary folder writes exactly the committed files (determinism)."""
    out = tmp_path / "test_vectors"
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(out)], check=True, cwd=ROOT, capture_output=True
    )
    committed, regenerated = _tree(VECTOR_DIR), _tree(out)
    assert sorted(regenerated) == sorted(committed), "the generator writes a different set of files"
    differ = [name for name in committed if committed[name] != regenerated[name]]
    assert differ == [], f"regenerated files differ from the committed ones: {differ}"
