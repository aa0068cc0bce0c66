"""Readers of the decoded DCC payload, tolerant of any shape: the schema step (10) judges the shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vaxcred.result import Holder


def payload_type(dcc: Mapping[str, Any]) -> str | None:
    """The one of ``v``/``t``/``r`` present with a non-empty list, else ``None``."""
    present = [k for k in ("v", "t", "r") if k in dcc]
    if len(present) != 1:
        return None
    # the entry count is the schema's business (1.3.0 allows one entry, earlier versions several)
    entries = dcc[present[0]]
    if not isinstance(entries, list) or not entries:
        return None
    return present[0]


def holder(dcc: Mapping[str, Any]) -> Holder | None:
    """The holder's names and date of birth as given (non-strings left out)."""
    nam = dcc.get("nam")
    dob = dcc.get("dob", "")
    if not isinstance(nam, Mapping):
        return None

    get = nam.get
    fn, gn, fnt, gnt = get("fn"), get("gn"), get("fnt"), get("gnt")
    return Holder(
        fn=fn if isinstance(fn, str) else None,
        gn=gn if isinstance(gn, str) else None,
        fnt=fnt if isinstance(fnt, str) else None,
        gnt=gnt if isinstance(gnt, str) else None,
        dob=dob if isinstance(dob, str) else "",
    )


def revocation_inputs(dcc: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The ``ci`` and ``co`` of the certificate entry (``None`` where the payload lacks them)."""
    for kind in ("v", "t", "r"):
        entries = dcc.get(kind)
        if isinstance(entries, list) and entries and isinstance(entries[0], Mapping):
            ci, co = entries[0].get("ci"), entries[0].get("co")
            return (ci if isinstance(ci, str) and ci else None), (co if isinstance(co, str) else None)
    return None, None
