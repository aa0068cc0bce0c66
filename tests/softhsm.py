"""A throwaway SoftHSM2 token for the PKCS#11 tests (real module, real token files in a temporary folder).

``scripts/ensure_system_deps.sh`` installs Debian's ``softhsm2`` when missing, so CI never skips; a developer
machine without it skips the token tests with the reason below. SoftHSM2 reads ``SOFTHSM2_CONF`` when the
module is first loaded, so one configuration (one token folder) serves a whole test process (an xdist worker).
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

import pytest

from vaxcred.keys import TokenConfig

PIN = b"2468-1357"
SO_PIN = "97531"
LABEL = "vaxcred-test"
SKIP_REASON = (
    "SoftHSM2 is not installed (run scripts/ensure_system_deps.sh as root: apt-get install softhsm2)"
)


def softhsm_module() -> str | None:
    """The SoftHSM2 PKCS#11 module of this machine, or ``None``."""
    found = glob.glob("/usr/lib/softhsm/libsofthsm2.so") + glob.glob("/usr/lib/*/softhsm/libsofthsm2.so")
    return found[0] if found and shutil.which("softhsm2-util") else None


def init_token(folder: Path, label: str = LABEL) -> TokenConfig:
    """Write ``softhsm2.conf`` for ``folder`` (once) and initialise a fresh token ``label`` there."""
    module = softhsm_module()
    if module is None:
        pytest.skip(SKIP_REASON)
    tokens = folder / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = folder / "softhsm2.conf"
    if not conf.exists():
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            PIN.decode(),
            "--so-pin",
            SO_PIN,
        ],
        check=True,
        capture_output=True,
        env={"SOFTHSM2_CONF": str(conf), "PATH": "/usr/bin:/bin"},
    )
    return TokenConfig(module=module, token_label=label)
