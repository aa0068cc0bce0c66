"""A one-pass acceptance test for the vaccination DCC in the exact layout vaxcred issues — fast, never a refusal.

:func:`plainly_valid` answers ``True`` only for a payload that is *exactly* ``{"ver", "nam", "dob", "v"}`` with
``ver`` one of the 1.3.x versions, ``nam`` made of ``fn``/``fnt``/``gn``/``gnt`` (``fnt`` present), one ``v``
entry made of exactly the ten required fields, every value of the type and form below. Such a payload is valid
under the 1.3.x schemas (their whole vaccination subset: strings, ``maxLength`` 80, the ``^[A-Z<]*$``,
``dob`` and ``[A-Z]{1,10}`` patterns, ``dose_posint``; ``dt``'s ``format`` is not asserted) *and* the DCC
profile's checks (one entry, whole-value ``dob`` and ``co``): :func:`~vaxcred.schema.validate_dcc` then has
nothing to add. Each test here is at least as strict as the schema's: ``type(x) is int`` (no ``bool``, no
``2.0``), ``type(x) is str`` / ``dict`` / ``list`` (no subclasses), ASCII ``[0-9]`` for ECMA's ``\\d``, ``\\Z``
for ECMA's ``$``, ``len`` counting code points as ``maxLength`` does.

``False`` proves nothing: the compiled schema decides (extra keys, other versions, a test or recovery entry,
anything unusual). tests/test_schema.py holds it to jsonschema (the accepted set is inside the oracle's).
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["plainly_valid"]

#: the versions whose schema's vaccination subset is the one checked here (1.3.0 requires ``fnt``; 1.3.1 on
#: ``fnt`` or ``gnt``: requiring ``fnt`` satisfies both)
_VERSIONS: Final = frozenset({"1.3.0", "1.3.1", "1.3.2", "1.3.3"})
_NAME_KEYS: Final = frozenset({"fn", "fnt", "gn", "gnt"})
_MAX: Final = 80
_STANDARDISED: Final = re.compile(r"[A-Z<]{0,80}\Z").match
_DOB: Final = re.compile(r"(?:(?:19|20)[0-9]{2}(?:-[0-9]{2}){0,2})?\Z").match
_COUNTRY: Final = re.compile(r"[A-Z]{1,10}\Z").match


def plainly_valid(dcc: Any) -> bool:
    """Whether ``dcc`` is a vaccination DCC in vaxcred's own layout that the schema and the profile accept
    (module docstring); ``False`` means "not shown here", never "invalid". Never raises."""
    try:
        return _plainly_valid(dcc)
    except Exception:  # exotic keys or values: the full validator decides
        return False


def _plainly_valid(dcc: Any) -> bool:
    if type(dcc) is not dict or len(dcc) != 4:
        return False
    ver = dcc.get("ver")
    nam = dcc.get("nam")
    dob = dcc.get("dob")
    entries = dcc.get("v")
    if type(ver) is not str or ver not in _VERSIONS:
        return False
    if type(dob) is not str or _DOB(dob) is None:
        return False
    if type(nam) is not dict or "fnt" not in nam or not nam.keys() <= _NAME_KEYS:
        return False
    for key, value in nam.items():
        if type(value) is not str or len(value) > _MAX:
            return False
        if (key == "fnt" or key == "gnt") and _STANDARDISED(value) is None:
            return False
    if type(entries) is not list or len(entries) != 1:
        return False
    entry = entries[0]
    if type(entry) is not dict or len(entry) != 10:
        return False
    tg, vp, mp, ma = entry.get("tg"), entry.get("vp"), entry.get("mp"), entry.get("ma")
    dn, sd, dt = entry.get("dn"), entry.get("sd"), entry.get("dt")
    co, issuer, ci = entry.get("co"), entry.get("is"), entry.get("ci")
    return (
        type(tg) is str
        and type(vp) is str
        and type(mp) is str
        and type(ma) is str
        and type(dt) is str
        and type(dn) is int
        and dn >= 1
        and type(sd) is int
        and sd >= 1
        and type(co) is str
        and _COUNTRY(co) is not None
        and type(issuer) is str
        and len(issuer) <= _MAX
        and type(ci) is str
        and len(ci) <= _MAX
    )
