"""JSON Schema ``pattern`` semantics: ECMA-262 regular expressions (with the ``u`` flag) run on Python's ``re``.

JSON Schema (Draft 2020-12, Core §6.4) takes ``pattern`` in the ECMA-262 dialect, Unicode-aware, and
unanchored (a match anywhere).  Python's ``re`` reads the same text differently (SECURITY.md pitfall 18):

===========  ===================================================  ==========================================
syntax       ECMA-262 (``u`` flag)                                Python ``re``
===========  ===================================================  ==========================================
``$``        end of input only                                    also before a final ``\\n``
``\\d``       ``[0-9]``                                            any Unicode decimal digit (``٣``)
``\\w``       ``[A-Za-z0-9_]``                                     any Unicode letter or digit
``\\b``       boundary between ``\\w`` (ASCII) and not              Unicode word boundary
``\\s``       WhiteSpace and LineTerminator (incl. U+FEFF)         ``str.isspace`` (incl. U+001C–U+001F)
``.``        anything but ``\\n``, ``\\r``, U+2028, U+2029          anything but ``\\n``
``a*+``      a syntax error                                       a possessive quantifier
===========  ===================================================  ==========================================

:func:`compile_pattern` translates an ECMA pattern into a Python pattern with exactly the ECMA matches, for
the subset a schema needs: literals, escapes of syntax characters, ``\\t\\n\\v\\f\\r\\0``, ``\\xHH``,
``\\uHHHH``, ``\\cX``, the class escapes ``\\d\\D\\w\\W\\s\\S``, ``\\b\\B``, ``.``, ``^``, ``$``, groups
``(…)``, ``(?:…)``, lookaheads, ``|``, the quantifiers ``* + ? {n} {n,} {n,m}`` (greedy or lazy) and
character classes with ranges.  Anything else (backreferences, lookbehind, named groups, ``\\p{…}``,
``\\u{…}``, a lone ``{``) raises :class:`ValueError` at compile time: only vendored schemas are compiled, so a
construct this module cannot translate exactly is refused, never approximated.  The tests hold Node.js's
own ``RegExp`` as the oracle.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["compile_pattern", "translate"]

_DIGIT: Final = "0-9"
_WORD: Final = "A-Za-z0-9_"
#: ECMA-262 WhiteSpace (TAB, VT, FF, SP, NBSP, ZWNBSP, Zs) and LineTerminator (LF, CR, LS, PS)
_SPACE: Final = "\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_CLASS_ESCAPES: Final = {
    "d": f"[{_DIGIT}]",
    "D": f"[^{_DIGIT}]",
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
}
_IN_CLASS: Final = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
_BOUNDARY: Final = f"(?:(?<=[{_WORD}])(?![{_WORD}])|(?<![{_WORD}])(?=[{_WORD}]))"
_NOT_BOUNDARY: Final = f"(?:(?<=[{_WORD}])(?=[{_WORD}])|(?<![{_WORD}])(?![{_WORD}]))"
_CONTROL_ESCAPES: Final = {"t": "\t", "n": "\n", "v": "\x0b", "f": "\x0c", "r": "\r"}
_SYNTAX: Final = frozenset("^$\\.*+?()[]{}|/")
_QUANTIFIER_RE: Final = re.compile(r"\{[0-9]+(?:,[0-9]*)?\}")
_HEX2: Final = re.compile(r"[0-9A-Fa-f]{2}")
_HEX4: Final = re.compile(r"[0-9A-Fa-f]{4}")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The ECMA-262 ``pattern`` as a compiled Python regex with the same matches (use ``.search``)."""
    source = translate(pattern)
    try:
        return re.compile(source)
    except (re.error, OverflowError) as e:  # `a{3,2}`, a repeat count beyond re's limit: ECMA errors too
        raise ValueError(f"ECMA pattern {pattern!r}: {e}") from e


def translate(pattern: str) -> str:
    """Python ``re`` source matching exactly what the ECMA-262 (``u`` flag) ``pattern`` matches."""
    return _Translator(pattern).run()


def _literal(ch: str) -> str:
    return re.escape(ch)


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.pos = 0
        self.out: list[str] = []
        #: per open group: whether it may take a quantifier once closed (lookaheads may not, with ``u``)
        self.groups: list[bool] = []
        #: whether the last item may take a quantifier (an atom, not an assertion or another quantifier)
        self.quantifiable = False

    def fail(self, what: str) -> ValueError:
        return ValueError(f"ECMA pattern {self.src!r}: {what} at offset {self.pos} is not supported")

    def run(self) -> str:
        src = self.src
        while self.pos < len(src):
            ch = src[self.pos]
            if ch == "\\":
                self.escape()
            elif ch == "[":
                self.char_class()
            elif ch == "(":
                self.group_start()
            elif ch == ")":
                if not self.groups:
                    raise self.fail("unbalanced ')'")
                self.emit(")", atom=self.groups.pop(), advance=1)
            elif ch == "|":
                self.emit("|", atom=False, advance=1)
            elif ch in "*+?":
                self.quantifier(ch, 1)
            elif ch == "{":
                match = _QUANTIFIER_RE.match(src, self.pos)
                if match is None:
                    raise self.fail("a lone '{'")
                self.quantifier(match.group(), len(match.group()))
            elif ch in "}]":
                raise self.fail(f"a lone {ch!r}")
            elif ch == ".":
                self.emit("[^\\n\\r\\u2028\\u2029]", atom=True, advance=1)
            elif ch == "^":
                self.emit("^", atom=False, advance=1)  # no multiline flag: start of input only
            elif ch == "$":
                self.emit("\\Z", atom=False, advance=1)  # end of input only, never before a final \n
            else:
                self.emit(_literal(ch), atom=True, advance=1)
        if self.groups:
            raise self.fail("an unclosed group")
        return "".join(self.out)

    def emit(self, text: str, *, atom: bool, advance: int) -> None:
        self.out.append(text)
        self.quantifiable = atom
        self.pos += advance

    def quantifier(self, text: str, length: int) -> None:
        if not self.quantifiable:
            raise self.fail("a quantifier with nothing to repeat")
        lazy = self.src.startswith("?", self.pos + length)
        self.out.append(text + ("?" if lazy else ""))
        self.pos += length + (1 if lazy else 0)
        self.quantifiable = False  # `a*+`, `a{2}{3}`: syntax errors in ECMA, not possessive

    def group_start(self) -> None:
        src = self.src
        for opener, quantifiable in (("(?:", True), ("(?=", False), ("(?!", False)):
            if src.startswith(opener, self.pos):
                self.groups.append(quantifiable)
                self.emit(opener, atom=False, advance=len(opener))
                return
        if src.startswith("(?", self.pos):
            raise self.fail("this group syntax (lookbehind, named group)")
        self.groups.append(True)
        self.emit("(", atom=False, advance=1)

    def escape(self) -> None:
        src = self.src
        if self.pos + 1 >= len(src):
            raise self.fail("a trailing backslash")
        ch = src[self.pos + 1]
        if ch in _CLASS_ESCAPES:
            self.emit(_CLASS_ESCAPES[ch], atom=True, advance=2)
        elif ch == "b":
            self.emit(_BOUNDARY, atom=False, advance=2)
        elif ch == "B":
            self.emit(_NOT_BOUNDARY, atom=False, advance=2)
        else:
            char, length = self.character_escape(in_class=False)
            self.emit(_literal(char), atom=True, advance=length)

    def character_escape(self, *, in_class: bool) -> tuple[str, int]:
        """The character an escape at ``pos`` denotes, and the escape's length."""
        src = self.src
        ch = src[self.pos + 1]
        if ch in _SYNTAX or (in_class and ch == "-"):
            return ch, 2
        if ch in _CONTROL_ESCAPES:
            return _CONTROL_ESCAPES[ch], 2
        if ch == "0" and not src[self.pos + 2 : self.pos + 3].isdigit():
            return "\0", 2
        if ch == "x" and _HEX2.fullmatch(src, self.pos + 2, self.pos + 4):
            return chr(int(src[self.pos + 2 : self.pos + 4], 16)), 4
        if ch == "u" and _HEX4.fullmatch(src, self.pos + 2, self.pos + 6):
            code = int(src[self.pos + 2 : self.pos + 6], 16)
            if 0xD800 <= code <= 0xDFFF:
                raise self.fail("a surrogate escape")
            return chr(code), 6
        if (
            ch == "c"
            and src[self.pos + 2 : self.pos + 3].isascii()
            and src[self.pos + 2 : self.pos + 3].isalpha()
        ):
            return chr(ord(src[self.pos + 2]) % 32), 3
        if in_class and ch == "b":
            return "\b", 2
        raise self.fail(f"the escape \\{ch}")

    def char_class(self) -> None:
        src = self.src
        self.pos += 1
        negated = src.startswith("^", self.pos)
        if negated:
            self.pos += 1
        # atoms: ("char", c), ("dash", "-") for an unescaped '-', ("set", members) for \d \w \s
        atoms: list[tuple[str, str]] = []
        while True:
            if self.pos >= len(src):
                raise self.fail("an unclosed character class")
            ch = src[self.pos]
            if ch == "]":
                self.pos += 1
                break
            if ch == "\\":
                if self.pos + 1 >= len(src):
                    raise self.fail("a trailing backslash")
                name = src[self.pos + 1]
                if name in _IN_CLASS:
                    atoms.append(("set", _IN_CLASS[name]))
                    self.pos += 2
                    continue
                if name in "DWS":
                    raise self.fail(f"\\{name} inside a class")
                char, length = self.character_escape(in_class=True)
                atoms.append(("char", char))
                self.pos += length
                continue
            atoms.append(("dash" if ch == "-" else "char", ch))
            self.pos += 1
        self.out.append(_class_source(atoms, negated, self))
        self.quantifiable = True


def _class_source(atoms: list[tuple[str, str]], negated: bool, owner: _Translator) -> str:
    if not atoms:
        return "[\\s\\S]" if negated else "[^\\s\\S]"  # ECMA: [] matches nothing, [^] anything
    parts: list[str] = []
    i = 0
    while i < len(atoms):
        kind, value = atoms[i]
        if i + 2 < len(atoms) and atoms[i + 1][0] == "dash":
            (low_kind, low), (high_kind, high) = atoms[i], atoms[i + 2]
            if low_kind == "set" or high_kind == "set":
                raise owner.fail("a class escape in a range")
            if ord(low) > ord(high):
                raise owner.fail("a range out of order")
            parts.append(f"{_literal(low)}-{_literal(high)}")
            i += 3
            continue
        parts.append(value if kind == "set" else _literal(value))
        i += 1
    return "[" + ("^" if negated else "") + "".join(parts) + "]"
