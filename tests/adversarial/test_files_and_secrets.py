"""Files holding a passport (a bearer credential) are readable by their owner only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial.conftest import ISSUE_AT, PASSPHRASE
from vaxcred.cli import main


@pytest.fixture
def wide_umask(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A permissive umask (0o000) and the key passphrase in the environment."""
    monkeypatch.setenv("VAXCRED_PASSPHRASE", PASSPHRASE)
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _issue(person: Path, chain: Path, *extra: str) -> int:
    return main(["issue", str(person), "--keys", str(chain), "--at", ISSUE_AT, *extra])


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_issue_out_png_svg_are_written_0600(
    wide_umask: None, cli_chain: Path, person_file: Path, tmp_path: Path
) -> None:
    """`issue --out/--png/--svg` under umask 000: every file is 0600 (--out was 0666 & ~umask)."""
    out, png, svg = tmp_path / "p.txt", tmp_path / "p.png", tmp_path / "p.svg"
    assert _issue(person_file, cli_chain, "--out", str(out), "--png", str(png), "--svg", str(svg)) == 0
    assert out.read_text(encoding="ascii").startswith("HC1:")
    assert {path.name: _mode(path) for path in (out, png, svg)} == {
        "p.txt": 0o600,
        "p.png": 0o600,
        "p.svg": 0o600,
    }


def test_existing_world_readable_out_file_is_narrowed(
    wide_umask: None, cli_chain: Path, person_file: Path, tmp_path: Path
) -> None:
    """An existing 0644 file given as --out is overwritten and narrowed to 0600."""
    out = tmp_path / "existing.txt"
    out.write_text("old", encoding="ascii")
    out.chmod(0o644)
    assert _issue(person_file, cli_chain, "--out", str(out)) == 0
    assert _mode(out) == 0o600
    assert out.read_text(encoding="ascii").startswith("HC1:")


def test_out_through_a_symlink_is_refused(
    wide_umask: None, cli_chain: Path, person_file: Path, tmp_path: Path
) -> None:
    """--out naming a symbolic link is a usage error; the link's target is left untouched."""
    target = tmp_path / "target.txt"
    target.write_text("keep", encoding="ascii")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert _issue(person_file, cli_chain, "--out", str(link)) == 3
    assert target.read_text(encoding="ascii") == "keep"


def test_out_into_a_missing_folder_is_a_usage_error(
    wide_umask: None, cli_chain: Path, person_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out in a folder that does not exist: exit 3 with the reason, no traceback."""
    assert _issue(person_file, cli_chain, "--out", str(tmp_path / "nope" / "p.txt")) == 3
    assert "cannot write" in capsys.readouterr().err
