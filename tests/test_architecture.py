"""Imports point one way (docs/architecture.md): no module imports a layer to its right."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vaxcred

ROOT = Path(vaxcred.__file__).resolve().parent

#: layer rank of each top-level module or package; a module may import only ranks <= its own
RANK = {
    "errors": 0,
    "_extras": 0,
    "oids": 0,
    "privacy": 0,
    "merkle": 0,
    "text": 0,
    "der": 0,
    "model": 1,
    "valuesets": 2,
    "schema": 2,
    "codec": 3,
    "crypto": 4,
    "pkcs8": 4,
    "x509util": 5,
    "keys": 6,
    "trust": 6,
    "rules": 6,
    "result": 7,
    "issue": 7,
    "revocation": 7,
    "verify": 8,
    "qr": 8,
    "conformance": 9,
    "storage": 9,
    "sync": 9,
    "pipeline": 10,
    "service": 10,
    "cli": 11,
    "demo": 12,
    "__main__": 12,
}
#: modules that must stay pure: they never open files, sockets or read the clock
PURE = [
    "codec",
    "text",
    "crypto",
    "model",
    "schema",
    "trust",
    "verify",
    "issue",
    "x509util",
    "der",
    "result",
    "merkle",
]


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vaxcred"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("vaxcred."):
                    found.add(alias.name.split(".")[1])
    return found


def test_every_module_has_a_rank() -> None:
    """A new module must be placed in the layering before it lands."""
    modules = {_module_of(p) for p in ROOT.rglob("*.py")} - {"__init__"}
    assert modules <= set(RANK), modules - set(RANK)


def test_imports_point_one_way() -> None:
    """No module imports a module of a higher layer."""
    bad = []
    for path in ROOT.rglob("*.py"):
        me = _module_of(path)
        if me == "__init__":
            continue
        for other in _imports(path):
            if other in RANK and RANK[other] > RANK[me]:
                bad.append(f"{path.relative_to(ROOT)} imports {other}")
    assert not bad, bad


def test_pure_modules_do_no_io_and_read_no_clock() -> None:
    """The codec, crypto, model, schema, trust, issue and verify modules never call open() or now()."""
    bad = []
    for name in PURE:
        target = ROOT / name
        paths = list(target.rglob("*.py")) if target.is_dir() else [ROOT / f"{name}.py"]
        for path in paths:
            text = path.read_text(encoding="utf-8")
            for needle in ("open(", ".now(", "utcnow(", "time.time(", "import socket"):
                if needle in text:
                    bad.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not bad, bad


#: layer rank of each pipeline stage package; a stage may import only stages of a rank <= its own
PIPELINE_RANK = {
    "errors": 0,
    "processes": 0,
    "records": 1,
    "log": 1,
    "registry": 2,
    "reports": 3,
    "site_signing": 4,
    "corrections": 5,
    "issuance": 6,
    "synthetic": 7,
}


def test_pipeline_stages_import_one_way() -> None:
    """Pipeline stages import only lower stages (records <- registry <- ... <- issuance), never in a circle."""
    pipeline = ROOT / "pipeline"
    stages = {p.relative_to(pipeline).parts[0].removesuffix(".py") for p in pipeline.rglob("*.py")} - {
        "__init__"
    }
    assert stages <= set(PIPELINE_RANK), stages - set(PIPELINE_RANK)
    bad = []
    for path in pipeline.rglob("*.py"):
        me = path.relative_to(pipeline).parts[0].removesuffix(".py")
        if me == "__init__":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("vaxcred.pipeline.")
            ):
                other = node.module.split(".")[2]
                if PIPELINE_RANK[other] > PIPELINE_RANK[me]:
                    bad.append(f"pipeline/{path.relative_to(pipeline)} imports {other}")
    assert not bad, bad


#: layer rank of the modules inside a package split by responsibility; a module may import only modules of
#: the same package with a rank <= its own (``__init__`` sits on top: it names what others may use)
PACKAGE_RANK = {
    "verify": {
        "steps": 0,
        "payload": 0,
        "envelope": 1,
        "signer": 1,
        "validity": 1,
        "policy": 1,
        "__init__": 2,
    },
    "codec": {
        "image": 0,
        "prefix": 0,
        "base45": 0,
        "compress": 0,
        "cbor_encode": 0,
        "vaccination_cbor": 1,
        "cbor": 1,
        "cose": 2,
        "cwt": 2,
        "__init__": 3,
    },
    "rules": {
        "datetimes": 0,
        "validator": 1,
        "evaluator": 2,
        "gateway_checks": 2,
        "gateway": 3,
        "ruleset": 4,
        "verdict": 5,
        "__init__": 6,
    },
    "trust": {
        "store": 0,
        "freshness": 1,
        "chain": 1,
        "cms": 1,
        "gateway_entries": 1,
        "gateway_export": 1,
        "signed": 2,
        "gateway": 2,
        "__init__": 3,
    },
    "qr": {
        "decode": 0,
        "render": 0,
        "isolated_child": 1,
        "isolated_pipes": 2,
        "isolated": 3,
        "__init__": 4,
    },
}


@pytest.mark.parametrize("package", sorted(PACKAGE_RANK))
def test_modules_inside_a_package_import_one_way(package: str) -> None:
    """Inside a split package, each module imports only its lower siblings (the orchestrator on top)."""
    ranks = PACKAGE_RANK[package]
    folder = ROOT / package
    unranked = {p.stem for p in folder.glob("*.py")} - set(ranks)
    assert not unranked, f"place {sorted(unranked)} in PACKAGE_RANK[{package!r}] before it lands"
    root = f"vaxcred.{package}"
    bad = []
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if node.module == root:  # `from vaxcred.qr import decode`: a sibling; any other name: __init__
                others = {a.name if a.name in ranks else "__init__" for a in node.names}
            elif node.module.startswith(root + "."):
                others = {node.module.removeprefix(root + ".").split(".")[0]}
            else:
                continue
            bad += [f"{package}/{path.name} imports {o}" for o in others if ranks[o] > ranks[path.stem]]
    assert not bad, bad
