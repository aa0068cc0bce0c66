"""A child process for the kill -9 tests of site signing, the registry check and correction resolution.

``python -m tests.pipeline.stage_child sign URL KEYS``: every site key in ``KEYS/sites/`` signs its verified
doses (:data:`BATCH` per transaction); ``registry URL REGISTRY_CSV [WORKERS [matcher|here]]``: check every unchecked person
(:data:`BATCH` per lookup; with a forked matcher process or matching in the child itself); ``resolve URL REGISTRY_CSV ID...``: resolve the corrections one after another.

Prints ``ready`` once started and one line after each committed batch (or resolution), flushed, so that the
parent can ``kill -9`` it at a chosen point. Keys are encrypted with :data:`PASSPHRASE` (cheap iterations).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from vaxcred.keys import KeyPair, load_certificate, load_private_key
from vaxcred.pipeline.corrections import resolve_correction
from vaxcred.pipeline.registry.check import run_registry_check
from vaxcred.pipeline.registry.lookup import TableRegistry
from vaxcred.pipeline.site_signing.stage import run_site_signing
from vaxcred.storage import open_database

PASSPHRASE = b"stage kill test passphrase"
BATCH = 7
#: the time every child acts at
NOW = dt.datetime(2022, 4, 20, 10, 0, tzinfo=dt.UTC)


def site_pairs(folder: Path) -> dict[str, KeyPair]:
    """The site key pairs saved in ``folder/sites``."""
    return {
        pem.stem: KeyPair(
            private_key=load_private_key(pem.with_suffix(".key"), PASSPHRASE),
            certificate=load_certificate(pem),
        )
        for pem in sorted((folder / "sites").glob("*.pem"))
    }


def main(argv: list[str]) -> None:
    stage, url = argv[0], argv[1]
    db = open_database(url)
    print("ready", flush=True)
    if stage == "sign":
        signers = {site: pair.signer() for site, pair in site_pairs(Path(argv[2])).items()}
        run_site_signing(db, signers, now=NOW, batch_size=BATCH, on_progress=lambda n: print(n, flush=True))
    elif stage == "registry":
        registry = TableRegistry.from_csv(argv[2])
        workers = int(argv[3]) if len(argv) > 3 else 1
        run_registry_check(
            db,
            registry,
            now=NOW,
            batch_size=BATCH,
            workers=workers,
            match_process=argv[4] == "matcher" if len(argv) > 4 else None,
            on_progress=lambda n: print(n, flush=True),
        )
    elif stage == "resolve":
        registry = TableRegistry.from_csv(argv[2])
        for correction_id in argv[3:]:
            resolve_correction(db, int(correction_id), now=NOW, registry=registry)
            print(correction_id, flush=True)
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    print("end", flush=True)
    db.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
