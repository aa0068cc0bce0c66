"""The one strings file: both languages complete, every verify step explained, the vendored decoder intact."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

from vaxcred.result import STEP_NAMES
from vaxcred.service.response import LANGUAGES, load_i18n, reason_for

STATIC = resources.files("vaxcred.service").joinpath("static")


def test_languages_have_the_same_keys() -> None:
    strings = load_i18n()
    assert set(strings) == set(LANGUAGES)
    for part in ("ui", "reasons"):
        assert set(strings["en"][part]) == set(strings["vi"][part])
        assert all(strings[lang][part].values() for lang in LANGUAGES)


def test_every_step_has_plain_words() -> None:
    """A code without its own text falls back to its step's, never to a code or an English-only text."""
    reasons = load_i18n()["en"]["reasons"]
    for step in (*STEP_NAMES, "revocation", "rules"):
        assert f"step.{step}" in reasons
    reason = reason_for("signature.some_future_code", "signature")
    assert reason.message.en == reasons["step.signature"]
    assert reason.message.vi != reason.message.en


def test_every_page_string_is_defined() -> None:
    """Each data-i18n key in the page and each t("…") in its script exists in the strings file."""
    html = STATIC.joinpath("index.html").read_text(encoding="utf-8")
    script = STATIC.joinpath("app.js").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n="([a-z_]+)"', html)) | set(re.findall(r'\bt\("([a-z_]+)"\)', script))
    used |= {f"{p}_{s}" for p in ("status", "hint") for s in ("VALID", "INVALID", "NEEDS_CHECK")}
    assert used <= set(load_i18n()["en"]["ui"]), used - set(load_i18n()["en"]["ui"])


def test_page_has_no_inline_script_or_handler() -> None:
    """The CSP forbids inline script: the page must not need it; data is written with textContent."""
    html = STATIC.joinpath("index.html").read_text(encoding="utf-8")
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert re.search(r"\son[a-z]+=", html) is None
    script = STATIC.joinpath("app.js").read_text(encoding="utf-8")
    assert re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", script) is None
    assert re.search(r"https?://", script) is None


def test_vendored_jsqr_matches_its_recorded_hash() -> None:
    """The committed jsQR build is the npm release named in static/vendor/README.md."""
    readme = STATIC.joinpath("vendor/README.md").read_text(encoding="utf-8")
    recorded = re.search(r"file SHA-256 `([0-9a-f]{64})`", readme)
    assert recorded is not None
    actual = hashlib.sha256(STATIC.joinpath("vendor/jsQR.js").read_bytes()).hexdigest()
    assert actual == recorded.group(1)
    assert (
        STATIC.joinpath("vendor/jsQR.LICENSE")
        .read_text(encoding="utf-8")
        .lstrip()
        .startswith("Apache License")
    )
