"""The bare core (``pip install vaxcred``: cryptography + cbor2) in a fresh virtual environment.

Offline and independent of any cache: the core's dependencies are re-packed as wheels from the
distributions installed in this environment (their RECORD files), vaxcred's own wheel is packed from the
source tree with metadata from pyproject.toml, and ``uv pip install --offline --no-index --no-deps`` installs
them all into an empty venv (console script included). In that venv a passport issued here verifies VALID,
each feature names its extra, and none of the extras' libraries can be imported.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import vaxcred
from tests.interop.payloads import DAY, NOW, sample_dcc
from vaxcred import issue, keys
from vaxcred._extras import MODULE_EXTRAS

REPO = Path(vaxcred.__file__).resolve().parent.parent
#: the uv that `make install` bootstraps (hash-pinned), else one on PATH
UV = next((str(p) for p in [REPO / ".tools" / "bin" / "uv"] if p.is_file()), None) or shutil.which("uv")

#: top-level modules of every extra's libraries: none may be importable in the bare venv
EXTRA_MODULES = tuple(MODULE_EXTRAS)

pytestmark = pytest.mark.skipif(UV is None, reason="uv is not on PATH (make install provides .tools/bin/uv)")


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"{arcname},sha256={digest},{len(data)}"


def _write_wheel(path: Path, files: dict[str, bytes], dist_info: str) -> None:
    """A wheel holding ``files`` (arcname -> bytes) with a RECORD computed here."""
    record = [_record_line(name, data) for name, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")


def _core_closure() -> list[importlib.metadata.Distribution]:
    """The installed distributions the core needs: vaxcred's unconditional requirements, transitively."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pending = [Requirement(r) for r in project["dependencies"]]
    seen: dict[str, importlib.metadata.Distribution] = {}
    while pending:
        req = pending.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        dist = importlib.metadata.distribution(req.name)
        seen[name] = dist
        pending.extend(Requirement(r) for r in dist.requires or ())
    return list(seen.values())


def _wheel_of_installed(dist: importlib.metadata.Distribution, out: Path) -> Path:
    """Re-pack an installed distribution (its RECORD's files under site-packages) as a wheel."""
    files: dict[str, bytes] = {}
    dist_info = ""
    for entry in dist.files or ():
        arcname = entry.as_posix()
        if arcname.startswith("..") or "__pycache__" in entry.parts:
            continue  # console scripts (outside site-packages) and byte code
        top = entry.parts[0]
        if top.endswith(".dist-info"):
            dist_info = top
            if entry.name in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
                continue
        files[arcname] = Path(str(dist.locate_file(entry))).read_bytes()
    wheel_meta = files[f"{dist_info}/WHEEL"].decode("utf-8")
    tag = next(line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:"))
    name = dist.metadata["Name"].replace("-", "_")
    path = out / f"{name}-{dist.version}-{tag}.whl"
    _write_wheel(path, files, dist_info)
    return path


def _wheel_of_source(out: Path) -> Path:
    """vaxcred's wheel from the source tree: the package, core metadata and the console script."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    version = project["version"]
    dist_info = f"vaxcred-{version}.dist-info"
    files: dict[str, bytes] = {}
    for path in sorted((REPO / "vaxcred").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[path.relative_to(REPO).as_posix()] = path.read_bytes()
    metadata = ["Metadata-Version: 2.1", "Name: vaxcred", f"Version: {version}"]
    metadata += [f"Requires-Dist: {r}" for r in project["dependencies"]]
    files[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode("utf-8")
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: vaxcred-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    scripts = "".join(f"{name} = {target}\n" for name, target in project["scripts"].items())
    files[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{scripts}".encode()
    path = out / f"vaxcred-{version}-py3-none-any.whl"
    _write_wheel(path, files, dist_info)
    return path


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with vaxcred and the core's dependencies only, installed offline."""
    assert UV is not None
    root = tmp_path_factory.mktemp("bare")
    wheels = root / "wheels"
    wheels.mkdir()
    venv = root / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_", "PYTHON"))}
    env |= {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_CACHE": "1"}
    subprocess.run(
        [UV, "venv", "--quiet", "--offline", "--python", sys.executable, str(venv)], check=True, env=env
    )
    built = [_wheel_of_installed(d, wheels) for d in _core_closure()] + [_wheel_of_source(wheels)]
    install = [UV, "pip", "install", "--quiet", "--offline", "--no-index", "--no-deps"]
    subprocess.run(
        [*install, "--python", str(venv / "bin" / "python"), *map(str, built)],
        check=True,
        env=env,
    )
    return venv


def _run_bare(venv: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in the bare venv, from a directory where the source tree is not importable."""
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=venv,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONNOUSERSITE": "1"},
        check=False,
    )


def test_bare_venv_holds_the_installed_package_not_the_source_tree(bare_venv: Path) -> None:
    """vaxcred comes from the venv's site-packages (the wheel), not from the checkout."""
    out = _run_bare(bare_venv, "import vaxcred; print(vaxcred.__file__)")
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(bare_venv)


def test_no_extra_library_is_importable(bare_venv: Path) -> None:
    """None of the extras' libraries is installed in the bare venv (so the tests below mean something)."""
    code = "import importlib.util, sys\nprint([m for m in sys.argv[1:] if importlib.util.find_spec(m)])"
    out = _run_bare(bare_venv, code, *EXTRA_MODULES)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_bare_core_verifies_a_passport_with_a_bare_dsc(bare_venv: Path, tmp_path: Path) -> None:
    """A passport issued by the full install verifies VALID in the bare venv, importing no extra."""
    csca = keys.make_csca(now=NOW - 60 * DAY)
    dsc = keys.make_dsc(csca, now=NOW - DAY)
    passport = issue(sample_dcc(), dsc.signer(), now=NOW)
    (tmp_path / "dsc.der").write_bytes(dsc.certificate.public_bytes(Encoding.DER))
    code = (
        "import json, sys\n"
        "from datetime import datetime\n"
        "from pathlib import Path\n"
        "from vaxcred import TrustStore, verify\n"
        "store = TrustStore.from_dsc_certificates([Path(sys.argv[2]).read_bytes()])\n"
        "result = verify(sys.argv[1], store, now=datetime.fromisoformat(sys.argv[3]))\n"
        "heavy = sorted(m for m in sys.argv[4:] if m in sys.modules)\n"
        "print(json.dumps([result.status.name, [s.code for s in result.steps], heavy]))\n"
    )
    out = _run_bare(
        bare_venv, code, passport.hc1, str(tmp_path / "dsc.der"), (NOW + DAY).isoformat(), *EXTRA_MODULES
    )
    assert out.returncode == 0, out.stderr
    status, codes, heavy = json.loads(out.stdout)
    assert status == "VALID", codes
    assert heavy == []


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("vaxcred.qr", "qr"),
        ("vaxcred.qr.render", "qr"),
        ("vaxcred.pipeline", "pipeline"),
        ("vaxcred.pipeline.issuance", "pipeline"),
        ("vaxcred.storage", "pipeline"),
        ("vaxcred.cli._group", "cli"),
        ("vaxcred.service", "server"),
    ],
)
def test_importing_a_feature_names_its_extra(bare_venv: Path, module: str, extra: str) -> None:
    """Importing a feature without its extra raises MissingExtraError naming the extra and how to install it."""
    code = (
        "import importlib, sys\n"
        "from vaxcred import MissingExtraError\n"
        "try:\n"
        "    importlib.import_module(sys.argv[1])\n"
        "except MissingExtraError as e:\n"
        "    print(e.extra); print(e)\n"
    )
    out = _run_bare(bare_venv, code, module)
    assert out.returncode == 0, out.stderr
    named, message = out.stdout.splitlines()
    assert named == extra
    assert f"pip install 'vaxcred[{extra}]'" in message


def test_image_input_without_qr_extra_is_a_failed_step(bare_venv: Path) -> None:
    """verify() given PNG bytes without [qr] fails its first step with image.extra_missing, naming the extra."""
    code = (
        "from datetime import UTC, datetime\n"
        "from vaxcred import TrustStore, verify\n"
        "png = b'\\x89PNG\\r\\n\\x1a\\n' + bytes(64)\n"
        "result = verify(png, TrustStore.from_dsc_certificates([]), now=datetime(2026, 1, 1, tzinfo=UTC))\n"
        "print(result.status.name); print(result.steps[0].code); print(result.steps[0].message)\n"
    )
    out = _run_bare(bare_venv, code)
    assert out.returncode == 0, out.stderr
    status, code_, message = out.stdout.splitlines()
    assert (status, code_) == ("INVALID", "image.extra_missing")
    assert "'vaxcred[qr]'" in message


def test_console_script_without_click_names_the_cli_extra(bare_venv: Path) -> None:
    """The `vaxcred` command without click prints the extra to install and exits 3, with no traceback."""
    out = subprocess.run(
        [str(bare_venv / "bin" / "vaxcred"), "verify", "HC1:X"],
        capture_output=True,
        text=True,
        cwd=bare_venv,
        env={"PATH": os.environ.get("PATH", "")},
        check=False,
    )
    assert out.returncode == 3
    assert "pip install 'vaxcred[cli]'" in out.stderr
    assert "Traceback" not in out.stderr


#: top-level modules that are features (each needs an extra); every other top-level module is core
FEATURE_MODULES = {"qr", "pipeline", "storage", "cli", "demo", "__main__", "service"}


def _core_modules() -> list[str]:
    package = REPO / "vaxcred"
    names = {p.stem for p in package.glob("*.py")} | {p.parent.name for p in package.glob("*/__init__.py")}
    return sorted(f"vaxcred.{n}" for n in names - FEATURE_MODULES - {"__init__"})


def test_every_core_module_imports_in_the_bare_venv(bare_venv: Path) -> None:
    """Every top-level module but the features imports with the core alone (a new one is core by default)."""
    code = (
        "import importlib, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as e:\n"
        "        failed.append(f'{name}: {e}')\n"
        "print(failed)\n"
    )
    modules = _core_modules()
    assert "vaxcred.verify" in modules
    out = _run_bare(bare_venv, code, *modules)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
