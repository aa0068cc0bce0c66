"""A child process for the issuance tests that need processes of their own (``kill -9``, concurrent workers).

``python -m tests.pipeline.issuance_child URL KEYS BATCH LEASE_SECONDS [wait] [workers=N]``

Prints ``ready`` once started (with ``workers=N``: N worker processes; with ``wait``: then reads one line from stdin before it begins, so that several
children can be released together), the number of persons evaluated after each committed batch, and at the end one
JSON line with the report. ``KEYS`` is a folder written by :func:`write_keys`; the key passphrase comes from the
environment variable :data:`PASSPHRASE_ENV`. The issuer is built by :class:`KeyChainIssuerFactory`, the
picklable factory that worker processes use.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from vaxcred.keys import KeyPair, load_certificate, save_certificate, save_private_key
from vaxcred.pipeline.issuance.stage import KeyChainIssuerFactory, run_issuance
from vaxcred.storage import open_database

#: the issuance time of every test run
NOW = dt.datetime(2022, 4, 20, 10, 0, tzinfo=dt.UTC)
PASSPHRASE_ENV = "VAXCRED_TEST_ISSUANCE_PASSPHRASE"
PASSPHRASE = b"issuance test passphrase"
#: PBKDF2 iterations of the test key file: cheap to open in every worker (production keys use 600 000)
TEST_KEY_ITERATIONS = 1000


def write_keys(folder: Path, dsc: KeyPair, site_ca: KeyPair) -> Path:
    """A key-chain folder with ``dsc``'s key and certificate (``dsc-<kid>``) and the site CA certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"dsc-{dsc.kid.hex()}"
    save_private_key(folder / f"{stem}.key", dsc.private_key, PASSPHRASE, iterations=TEST_KEY_ITERATIONS)
    save_certificate(folder / f"{stem}.pem", dsc.certificate)
    save_certificate(folder / "site-ca.pem", site_ca.certificate)
    return folder


def issuer_factory(folder: Path) -> KeyChainIssuerFactory:
    """The issuer factory every test process uses for the keys in ``folder``."""
    return KeyChainIssuerFactory(folder=folder, at=NOW, passphrase_env=PASSPHRASE_ENV)


def main(argv: list[str]) -> None:
    url, keys, batch_size, lease = argv[0], Path(argv[1]), int(argv[2]), float(argv[3])
    options = argv[4:]
    workers = next((int(o.removeprefix("workers=")) for o in options if o.startswith("workers=")), 1)
    db = open_database(url)
    print("ready", flush=True)
    if "wait" in options:
        sys.stdin.readline()
    report = run_issuance(
        db,
        issuer_factory(keys),
        now=NOW,
        site_ca=load_certificate(keys / "site-ca.pem"),
        batch_size=batch_size,
        workers=workers,
        lease=dt.timedelta(seconds=lease),
        on_progress=lambda done: print(done, flush=True),
    )
    print(
        json.dumps(
            {
                "issued": report.issued,
                "skipped": report.skipped_ineligible,
                "failed": report.failed,
                "held_elsewhere": report.held_elsewhere,
                "reasons": dict(report.reasons),
            }
        ),
        flush=True,
    )
    db.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
