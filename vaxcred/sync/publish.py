"""The publisher's side: write a folder a ministry serves as static files for ``vaxcred sync``.

:func:`publish_folder` writes ``trust.cbor`` (an already signed national trust list, as given),
``files/<sha256 hex>`` for every rule, value-set and revocation-batch file, and ``index.cbor`` listing them,
signed by the trust-list key.  Revocation batches come as :class:`~vaxcred.revocation.RevocationBatch`
(e.g. read from the pipeline's ``vaxcred revocations export`` file) and are written one batch per file,
as the gateway serves them.  Files are written atomically, the index last.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from vaxcred.crypto import Signer
from vaxcred.revocation import RevocationBatch
from vaxcred.sync.freshness import DataKind
from vaxcred.sync.index import SyncIndex, entries_for, sign_index
from vaxcred.sync.state import FILES, INDEX, TRUST, write_atomic
from vaxcred.trust import Environment

__all__ = ["publish_folder"]


def publish_folder(
    out: Path,
    *,
    trust_list: bytes,
    signer: Signer,
    environment: Environment,
    issued_at: datetime,
    sequence: int,
    rules: Iterable[tuple[str, bytes]] = (),
    value_sets: Iterable[tuple[str, bytes]] = (),
    revocation_batches: Iterable[RevocationBatch] = (),
) -> SyncIndex:
    """Write the folder (see the module docstring) and return the index it signed."""
    contents: dict[DataKind, list[tuple[str, bytes]]] = {
        DataKind.RULES: list(rules),
        DataKind.VALUE_SETS: list(value_sets),
        DataKind.REVOCATION: [
            (f"revocation/{i:06d}.json", batch.to_json()) for i, batch in enumerate(revocation_batches)
        ],
    }
    (out / FILES).mkdir(parents=True, exist_ok=True)
    entries = []
    for kind, items in contents.items():
        for entry, (_, data) in zip(entries_for(kind, items), items, strict=True):
            write_atomic(out / entry.path, data)
            entries.append(entry)
    index = SyncIndex(environment=environment, issued_at=issued_at, sequence=sequence, files=tuple(entries))
    write_atomic(out / TRUST, trust_list)
    write_atomic(out / INDEX, sign_index(index, signer=signer))
    return index
