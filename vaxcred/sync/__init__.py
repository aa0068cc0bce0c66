"""Keeping a verifier's data current: the signed national trust list, rules, value sets and revocations.

A ministry serves one folder as static files (docs/sync.md)::

    URL/trust.cbor          the signed national trust list (vaxcred.trust.signed)
    URL/index.cbor          a signed index of the files below, with their SHA-256 (vaxcred.sync.index)
    URL/files/<sha256 hex>  rule sets, value sets, revocation batches (one gateway batch per file)

- :mod:`~vaxcred.sync.client`: :func:`sync_folder` — conditional GETs, verification against the pinned
  anchor, no rollback, nothing stale installed, atomic replacement, the last good copy kept on any failure;
- :mod:`~vaxcred.sync.http`: one bounded GET (size cap, timeouts, total deadline);
- :mod:`~vaxcred.sync.folder`: :func:`load_folder` (what a verifier or the HTTP service loads) and
  :func:`load_revocation_files` (batch files as published, e.g. the pipeline's export);
- :mod:`~vaxcred.sync.freshness`: :class:`DataFreshnessPolicy`, the maximum age per kind of data;
- :mod:`~vaxcred.sync.publish`: :func:`publish_folder`, the ministry's side.

Failures are :class:`~vaxcred.errors.SyncError` (``sync.*``) or the trust list's own
:class:`~vaxcred.errors.TrustStoreError` codes (``trust.*``).
"""

from __future__ import annotations

from vaxcred.sync.client import PartOutcome, SyncReport, sync_folder
from vaxcred.sync.folder import DataFile, FileProblem, SyncedData, load_folder, load_revocation_files
from vaxcred.sync.freshness import DataFreshnessPolicy, DataKind
from vaxcred.sync.http import HttpLimits
from vaxcred.sync.index import INDEX_CONTENT_TYPE, IndexEntry, SyncIndex, load_signed_index, sign_index
from vaxcred.sync.publish import publish_folder

__all__ = [
    "INDEX_CONTENT_TYPE",
    "DataFile",
    "DataFreshnessPolicy",
    "DataKind",
    "FileProblem",
    "HttpLimits",
    "IndexEntry",
    "PartOutcome",
    "SyncIndex",
    "SyncReport",
    "SyncedData",
    "load_folder",
    "load_revocation_files",
    "load_signed_index",
    "publish_folder",
    "sign_index",
    "sync_folder",
]
