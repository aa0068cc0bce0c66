"""vaxcred.sync.http: URLs it refuses before any connection; limits it refuses to take."""

from __future__ import annotations

import pytest

from vaxcred.errors import SyncError
from vaxcred.sync import HttpLimits
from vaxcred.sync.http import fetch


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "http://", "http://127.0.0.1:99999/"]
)
def test_only_http_urls_with_a_host(url: str) -> None:
    """Other schemes, no host, a bad port: sync.bad_url."""
    with pytest.raises(SyncError) as info:
        fetch(url, max_bytes=10)
    assert info.value.code == "sync.bad_url"


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf")])
def test_limits_must_be_positive_and_finite(value: float) -> None:
    """A zero, negative or infinite timeout is a caller mistake."""
    with pytest.raises(ValueError):
        HttpLimits(deadline=value)
