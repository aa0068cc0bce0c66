"""The lock files agree: pylock.toml and requirements.lock (for pip users) pin what uv.lock pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _uv_lock() -> dict[str, set[str]]:
    data = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    versions: dict[str, set[str]] = {}
    for package in data["package"]:
        if "version" in package and package["name"] != "vaxcred":
            versions.setdefault(package["name"], set()).add(package["version"])
    return versions


def test_pylock_pins_exactly_what_uv_lock_pins() -> None:
    """Every package of pylock.toml is in uv.lock at the same version, with a hash, and none is missing."""
    locked = _uv_lock()
    data = tomllib.loads((ROOT / "pylock.toml").read_text(encoding="utf-8"))
    exported = {p["name"]: p for p in data["packages"] if p["name"] != "vaxcred"}
    for name, package in exported.items():
        assert package["version"] in locked[name], name
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files, name
        assert all(f["hashes"]["sha256"] for f in files), name
    assert set(locked) == set(exported)


def test_requirements_lock_pins_every_package_with_hashes() -> None:
    """requirements.lock (pip install --require-hashes -r requirements.lock) pins each package of uv.lock."""
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^ ;\\\n]+)", text, re.M)
    assert pins
    locked = _uv_lock()
    for name, version in pins:
        assert version in locked[name.lower()], name
    assert {name.lower() for name, _ in pins} == set(locked)
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text)[1:]
    assert all("--hash=sha256:" in block for block in blocks)
