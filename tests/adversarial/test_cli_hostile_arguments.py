"""Every CLI command, every option, hostile values: an exit code in {0, 1, 2, 3} and never a traceback.

The commands and their parameters are read from :data:`vaxcred.cli.COMMANDS` (a new command or option is
covered without touching this file).  Each parameter in turn gets hostile values of its kind — huge and odd
dates, NUL bytes, control characters, undecodable text, nonexistent / directory / huge / non-UTF-8 files,
negative, huge and non-finite numbers — while the others keep a sane value.  Pipeline commands run against
a temporary SQLite database.  The catch-all in :func:`vaxcred.cli.main` must never fire ("internal error":
a defect), and what the command prints holds no raw control or bidi character.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding

from tests.adversarial.conftest import PASSPHRASE, PERSON
from vaxcred.cli import COMMANDS, main
from vaxcred.text import is_terminal_safe

DATES = [
    "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59Z",
    "0001-01-01",
    "99999-01-01",
    "2021-02-30",
    "1e999",
    "-1",
]
TEXTS = [
    "",
    "\x00",
    "a\x00b",
    "\x1b[2J\x1b]0;pwned\x07",
    "\u202eTXT",
    "\udcff\udcfe",
    "x" * 100_000,
    "--",
    "-",
]
INTS = ["-1", "0", "-99999999999999999999", "99999999999999999999999", "1e3", "nan", "٣", " 7", "0x10"]
FLOATS = ["nan", "inf", "-inf", "1e309", "-0", "1e-320", "-5", "99999999999"]
CHOICES = ["zzz", "", "\x00"]


@dataclass(frozen=True)
class Files:
    """Hostile and sane files for path parameters."""

    root: Path
    chain: Path
    person: Path
    db_template: Path

    def hostile(self) -> list[str]:
        huge = self.root / "huge.bin"
        if not huge.exists():
            with huge.open("wb") as fh:  # sparse: 64 MiB on paper, nothing on disk
                fh.truncate(64 * 1024 * 1024)
        binary = self.root / "binary.bin"
        binary.write_bytes(b"\xff\xfe\x00\x80" * 64 + b"\x1b[2J")
        deep = self.root / "deep.json"
        deep.write_text("[" * 200_000, encoding="ascii")
        empty = self.root / "empty"
        empty.write_bytes(b"")
        return [
            str(self.root / "does-not-exist"),
            str(self.root),  # a directory
            str(huge),
            str(binary),
            str(deep),
            str(empty),
            "/dev/null",
            str(self.root / "a\x00b"),
            str(self.root / ("n" * 5000)),
            str(self.root / "\x1b[31m\u202e.txt"),
            str(self.root / "\udcff.json"),
        ]


def _leaf_commands() -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name in sorted(COMMANDS):
        module_name, _, attribute = COMMANDS[name][0].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        yield from _walk(command, (name,))


def _walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from _walk(command.commands[name], (*path, name))
    else:
        yield path, command


LEAVES = dict(_leaf_commands())


def _is_path(param: click.Parameter) -> bool:
    return isinstance(param.type, click.Path | click.File) or param.name in {
        "registry",
        "dscs",
        "input_value",
    }


def _sane(param: click.Parameter, files: Files, work: Path) -> str:
    """A plausible value, so that the one hostile parameter is what the command trips over."""
    name = param.name or ""
    if isinstance(param.type, click.Choice):
        return str(param.type.choices[0])
    if name == "db":
        return f"sqlite:///{work / 'vaxcred.db'}"
    if name in {"folder", "keys"}:
        return str(work / "keys")
    if name == "input_file":
        return str(files.person)
    if name == "input_value":
        return "HC1:X"
    if name == "dscs":
        return str(next(files.chain.glob("dsc-*.pem")))
    if isinstance(param.type, click.Path | click.File):
        return str(work / f"{name}.out")
    if isinstance(param.type, click.IntRange | click.FloatRange):
        low = param.type.min
        return str(int(low) if low is not None else 1)
    if isinstance(param.type, click.types.FloatParamType):
        return "0.5"
    if name == "at":
        return "2026-01-02T00:00:00Z"
    if name in {"citizen_id"}:
        return "001090012345"
    if name == "registry":
        return str(files.root / "registry.csv")
    return "S1"


def _hostile(param: click.Parameter, files: Files, *, every: bool) -> list[str]:
    """Hostile values for ``param``: all of them (``every``), or every other one (the quick default run)."""
    if _is_path(param):
        values = files.hostile()
    elif isinstance(param.type, click.Choice):
        values = CHOICES
    elif isinstance(param.type, click.IntRange | click.types.IntParamType):
        values = INTS
    elif isinstance(param.type, click.FloatRange | click.types.FloatParamType):
        values = FLOATS
    elif param.name in {"at", "since", "dose_date", "trust_list_retrieved_at", "max_trust_age", "opening"}:
        values = DATES + TEXTS
    else:
        values = TEXTS
    return values if every else values[::2]


def _argv(path: tuple[str, ...], command: click.Command, values: dict[str, str]) -> list[str]:
    argv = list(path)
    for param in command.params:
        if param.name not in values:
            continue
        if isinstance(param, click.Argument):
            argv.append(values[param.name])  # after "--" below if it looks like an option
        else:
            argv.extend([param.opts[0], values[param.name]])
    return argv


def _run(argv: list[str], work: Path) -> tuple[int, str]:
    runner = CliRunner()
    env = {"VAXCRED_PASSPHRASE": PASSPHRASE, "VAXCRED_DB": f"sqlite:///{work / 'vaxcred.db'}"}
    with runner.isolation(input=b"", env=env) as (stdout, stderr, _):
        try:
            code = main(argv)
        except BaseException as e:
            return -1, f"{type(e).__name__} escaped main(): {e!r}"[:500]
        return code, stdout.getvalue().decode("utf-8", "replace") + stderr.getvalue().decode(
            "utf-8", "replace"
        )


def _fresh_work(files: Files, work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    shutil.copytree(files.chain, work / "keys")
    shutil.copyfile(files.db_template, work / "vaxcred.db")


@pytest.fixture(autouse=True)
def no_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve` gets as far as binding its socket and `worker` as far as its first pass, then they return."""
    server = pytest.importorskip("vaxcred.service.server")

    def stop(app: object, sock: Any, **_: object) -> int:
        sock.close()
        return 0

    monkeypatch.setattr(server, "serve", stop)
    # `worker` parses and checks everything, opens its keys and database, then stops at once instead of
    # serving for ever (it waits for SIGTERM otherwise: the suite hung here)
    worker_cli = pytest.importorskip("vaxcred.cli.worker")
    serve_issuance = worker_cli.serve_issuance

    def stop_at_once(*args: Any, **kwargs: Any) -> Any:
        kwargs["stop"] = lambda: True
        return serve_issuance(*args, **kwargs)

    monkeypatch.setattr(worker_cli, "serve_issuance", stop_at_once)


@pytest.fixture(scope="module")
def files(cli_chain: Path, tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("hostile")
    person = root / "person.json"
    person.write_text(str(PERSON).replace("'", '"'), encoding="utf-8")
    (root / "registry.csv").write_text("citizen_id,name,dob\n", encoding="utf-8")
    db = root / "template.db"
    code, output = _run(["db", "init", "--db", f"sqlite:///{db}"], root)
    assert code == 0, output
    return Files(root=root, chain=cli_chain, person=person, db_template=db)


def _problems(code: int, output: str) -> list[str]:
    problems = []
    if code not in {0, 1, 2, 3}:
        problems.append(f"exit {code}")
    if "Traceback" in output or "internal error" in output:
        problems.append("traceback / internal error")
    if not all(is_terminal_safe(line) for line in output.splitlines()):
        problems.append("raw control/bidi character in the output")
    return problems


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_every_option_survives_hostile_values(path: tuple[str, ...], files: Files, tmp_path: Path) -> None:
    """Each parameter of the command, in turn, with hostile values: exit 0-3, no traceback, safe output."""
    _check_command(path, files, tmp_path, every=False)


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_every_option_survives_every_hostile_value(
    path: tuple[str, ...], files: Files, tmp_path: Path
) -> None:
    """The same with every hostile value of each kind (``make fuzz``)."""
    _check_command(path, files, tmp_path, every=True)


def _check_command(path: tuple[str, ...], files: Files, tmp_path: Path, *, every: bool) -> None:
    command = LEAVES[path]
    work = tmp_path / "work"
    sane = {p.name: _sane(p, files, work) for p in command.params if p.required and p.name}
    if any(p.name == "db" for p in command.params):
        sane["db"] = _sane(next(p for p in command.params if p.name == "db"), files, work)
    failures = []
    for param in command.params:
        if param.name is None or getattr(param, "is_flag", False):
            continue
        for value in _hostile(param, files, every=every):
            _fresh_work(files, work)
            argv = _argv(path, command, {**sane, param.name: value})
            code, output = _run(argv, work)
            if problems := _problems(code, output):
                failures.append((param.name, value[:60], problems, output[-300:]))
    assert failures == []


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_unknown_options_and_stray_arguments_are_usage_errors(path: tuple[str, ...], tmp_path: Path) -> None:
    """An unknown option, a stray argument or an option without its value: exit 3 (click's own 2 remapped)."""
    for argv in ([*path, "--no-such-option"], [*path, "stray", "extra", "arguments", "\x1b[2J"]):
        code, output = _run(argv, tmp_path)
        assert code == 3, (argv, output)
        assert _problems(code, output) == []


@pytest.mark.parametrize(
    "argv",
    [
        [b"verify", b"HC1:X", b"--dsc", b"x.pem", b"--at", b"9999-12-31T23:59:59-12:00"],
        [b"verify", b"\xff\xfe\x1b[2J", b"--dsc", b"\xff.pem"],
        [b"issue", b"\xff.json", b"--keys", b"\xfe"],
    ],
    ids=["at-beyond-9999", "undecodable-input", "undecodable-paths"],
)
def test_real_process_exits_3_without_traceback(argv: list[bytes], tmp_path: Path) -> None:
    """In a real process (undecodable argv bytes included): usage error, exit 3, nothing raw on stderr."""
    env = {**os.environ, "VAXCRED_PASSPHRASE": PASSPHRASE, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"vaxcred", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert proc.returncode == 3, output
    assert _problems(proc.returncode, output) == []


def test_dsc_pem_fixture_is_a_certificate(files: Files) -> None:
    """The sane --dsc value is a real DSC certificate (so --dsc checks start from a working command)."""
    from cryptography import x509

    pem = next(files.chain.glob("dsc-*.pem")).read_bytes()
    assert x509.load_pem_x509_certificate(pem).public_bytes(Encoding.PEM) == pem
