"""POST /verify, GET /trust, /healthz and /openapi.json over real HTTP on loopback (``vaxcred serve``)."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.support import HOLDER_DOB, HOLDER_FN, HOLDER_GN, Chain, LiveServer
from vaxcred import qr
from vaxcred.service.models import ErrorResponse, Health, TrustOut, VerifyResponse


def _verify(server: LiveServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/verify", json=body, timeout=10)


def _ok(response: httpx.Response) -> VerifyResponse:
    assert response.status_code == 200, response.text
    return VerifyResponse.model_validate_json(response.content)


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return ErrorResponse.model_validate_json(response.content).error.code


def test_valid_passport_is_valid_with_name_and_dob(server: LiveServer, chain: Chain) -> None:
    """A genuine passport on a signed trust list: VALID, holder for the photo-ID check, every step."""
    result = _ok(_verify(server, {"qr": chain.valid()}))
    assert result.status == "VALID"
    assert result.reasons == []
    assert result.holder is not None
    assert (result.holder.fn, result.holder.gn, result.holder.dob) == (HOLDER_FN, HOLDER_GN, HOLDER_DOB)
    assert result.holder.gnt == "THI<MINH<KHAI"
    assert result.details is not None
    steps = {s.name: s.code for s in result.details.steps}
    assert steps["chain"] == "chain.ok"
    assert steps["signature"] == "signature.ok"
    assert result.details.issuer_country == "VN"
    assert result.trust.mode == "signed_list"
    assert result.trust.environment == "TST"


def test_expired_passport_is_invalid_with_plain_reason_in_both_languages(
    server: LiveServer, chain: Chain
) -> None:
    """The reason carries a stable code and plain words in Vietnamese and English."""
    result = _ok(_verify(server, {"qr": chain.expired()}))
    assert result.status == "INVALID"
    assert [(r.code, r.step) for r in result.reasons] == [("time.expired", "time")]
    message = result.reasons[0].message
    assert message.en == "The certificate has expired."
    assert message.vi == "Chứng nhận đã hết hạn."


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (Chain.tampered, "signature.invalid"),
        (Chain.unknown_signer, "kid.unknown"),
    ],
)
def test_forged_passports_are_invalid_without_holder(
    server: LiveServer, chain: Chain, make: Any, code: str
) -> None:
    """Nothing from an unverified payload is shown: no holder before the signature holds."""
    result = _ok(_verify(server, {"qr": make(chain)}))
    assert result.status == "INVALID"
    assert result.reasons[0].code == code
    assert result.holder is None


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("hello", "prefix.missing"),
        ("HC1:" + "A" * 5000, "prefix.too_long"),
        ("HC1:ab!", "base45.invalid_char"),
        ("\x00\x1b[31m", "prefix.missing"),
    ],
)
def test_garbage_text_is_a_typed_invalid_result(server: LiveServer, text: str, code: str) -> None:
    """Bad QR text (NUL, lone surrogates included) is a verdict with a reason (200), not an HTTP error."""
    body = json.dumps({"qr": text}).encode()  # ASCII with \u escapes: lone surrogates reach the server
    response = httpx.post(f"{server.url}/verify", content=body, headers={"content-type": "application/json"})
    result = _ok(response)
    assert result.status == "INVALID"
    assert result.reasons[0].code == code


def test_lone_surrogate_in_json_is_422(server: LiveServer) -> None:
    """JSON that escapes a lone surrogate is malformed text: a typed 422, never a 500."""
    response = httpx.post(
        f"{server.url}/verify", content=b'{"qr": "HC1:\\udfff"}', headers={"content-type": "application/json"}
    )
    assert _error(response, 422) == "request.invalid"


def test_at_is_honoured_by_a_testing_service(server: LiveServer, chain: Chain) -> None:
    """With --testing-allow-at, `at` moves the verification time (here: after the passport expires)."""
    later = (datetime.now(UTC) + timedelta(days=800)).isoformat()
    result = _ok(_verify(server, {"qr": chain.valid(), "at": later}))
    assert result.status == "INVALID"
    assert "time.expired" in [r.code for r in result.reasons]
    assert result.verified_at == datetime.fromisoformat(later)


def test_at_is_refused_by_a_border_service(minimal_server: LiveServer, chain: Chain) -> None:
    """Without the testing flag the service uses its own clock: `at` is a 422 with a stable code."""
    response = _verify(minimal_server, {"qr": chain.valid(), "at": "2021-01-01T00:00:00Z"})
    assert _error(response, 422) == "request.at_not_allowed"


def test_minimal_mode_discloses_status_reasons_name_and_dob_only(
    minimal_server: LiveServer, chain: Chain
) -> None:
    """--minimal: no steps, kid, issuer or dates; the holder stays (the officer compares it)."""
    response = _verify(minimal_server, {"qr": chain.valid()})
    raw = response.json()
    assert raw["details"] is None
    result = _ok(response)
    assert result.status == "VALID"
    assert result.holder is not None
    assert result.holder.dob == HOLDER_DOB
    # bare DSCs and no data folder: the officer's screen says what was not checked
    assert [n.code for n in result.notes] == [
        "chain.not_checked",
        "revocation.not_configured",
        "rules.not_configured",
    ]
    assert "kid" not in response.text


def test_country_is_accepted(server: LiveServer, chain: Chain) -> None:
    """The destination country is validated and passed on to verify() where rule sets exist."""
    assert _ok(_verify(server, {"qr": chain.valid(), "country": "DE"})).status == "VALID"
    assert _error(_verify(server, {"qr": chain.valid(), "country": "de"}), 422) == "request.invalid"


def test_uploaded_photo_is_decoded_and_verified(server: LiveServer, chain: Chain) -> None:
    """multipart/form-data field `image`: decoded in the worker's isolated decoder process."""
    png = qr.render_png(chain.valid())
    response = httpx.post(f"{server.url}/verify", files={"image": ("qr.png", png, "image/png")}, timeout=10)
    assert _ok(response).status == "VALID"


def _children(pid: int) -> list[str]:
    """Command lines of the processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(cmdline)
    return found


def test_images_are_decoded_in_a_child_process(server: LiveServer) -> None:
    """The worker runs an isolated decoder child (python -m vaxcred.qr.isolated): images never reach it."""
    assert any("vaxcred.qr.isolated" in line for line in _children(server.process.pid))


def test_raw_image_body_is_decoded_and_verified(server: LiveServer, chain: Chain) -> None:
    """An image/png body (no form) works the same."""
    png = qr.render_png(chain.expired())
    response = httpx.post(
        f"{server.url}/verify", content=png, headers={"content-type": "image/png"}, timeout=10
    )
    result = _ok(response)
    assert result.reasons[0].code == "time.expired"


def test_upload_without_qr_code_says_so(server: LiveServer) -> None:
    """A photo without a QR code: INVALID with image.no_qr and plain words."""
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("L", (200, 200), 255).save(buffer, format="PNG")
    response = httpx.post(
        f"{server.url}/verify", files={"image": ("blank.png", buffer.getvalue(), "image/png")}, timeout=10
    )
    result = _ok(response)
    assert result.reasons[0].code == "image.no_qr"
    assert "QR" in result.reasons[0].message.vi


def test_upload_that_is_not_an_image_is_invalid(server: LiveServer) -> None:
    """Binary junk in the image field is a verdict, never a 500."""
    response = httpx.post(
        f"{server.url}/verify", files={"image": ("x.bin", b"\xff\xfe\x00junk", "image/png")}, timeout=10
    )
    assert _ok(response).status == "INVALID"


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"qr=HC1:", {"content-type": "text/plain"}, 415, "request.unsupported_media_type"),
        (b"", {}, 415, "request.unsupported_media_type"),
        (b"{not json", {"content-type": "application/json"}, 422, "request.invalid"),
        (b'{"qr": "HC1:x", "extra": 1}', {"content-type": "application/json"}, 422, "request.invalid"),
        (b'{"qr": ""}', {"content-type": "application/json"}, 422, "request.invalid"),
        (b'["HC1:x"]', {"content-type": "application/json"}, 422, "request.invalid"),
        (b"--x--\r\n", {"content-type": "multipart/form-data; boundary=x"}, 422, "request.invalid"),
        (b"junk", {"content-type": "multipart/form-data"}, 422, "request.invalid"),
    ],
)
def test_bad_bodies_get_typed_4xx(
    server: LiveServer, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    """Wrong media types 415, malformed bodies 422, each with a stable code and no echo of the input."""
    response = httpx.post(f"{server.url}/verify", content=content, headers=headers, timeout=10)
    assert _error(response, status) == code


def test_oversized_json_is_413(server: LiveServer) -> None:
    """A JSON body over 64 KiB is refused with 413."""
    response = httpx.post(
        f"{server.url}/verify",
        content=b'{"qr": "' + b"A" * 70_000 + b'"}',
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert _error(response, 413) == "request.too_large"


def _raw_request(server: LiveServer, head: bytes, chunks: list[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:
                break  # the server answered and closed: what this test wants
        data = b""
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
        return data


def test_declared_length_over_limit_is_refused_before_reading(server: LiveServer) -> None:
    """Content-Length of 1 GB: 413 at once, without the server waiting for (or reading) the body."""
    head = (
        b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000000\r\n\r\n"
    )
    answer = _raw_request(server, head, [])
    assert answer.startswith(b"HTTP/1.1 413")


def test_chunked_body_over_limit_is_cut_off(server: LiveServer) -> None:
    """A chunked upload is counted as it streams: past the upload limit the answer is 413."""
    head = (
        b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (65536, b"\x89" * 65536)
    answer = _raw_request(server, head, [chunk] * 64)  # 4 MiB, over the 2 MiB + 64 KiB limit
    assert answer.startswith(b"HTTP/1.1 413")


def test_trust_reports_mode_freshness_and_counts(server: LiveServer) -> None:
    """GET /trust: the signed list's issue time, its age, counts; no personal data."""
    response = httpx.get(f"{server.url}/trust", timeout=10)
    assert response.status_code == 200
    trust = TrustOut.model_validate_json(response.content)
    assert trust.mode == "signed_list"
    assert trust.signed_issue_time is True
    assert trust.sequence == 1
    assert (trust.dscs, trust.cscas, trust.countries) == (2, 1, ["VN"])
    assert 3500 < trust.age_seconds < 3600 + 600
    assert trust.fresh is True
    assert trust.minimal_disclosure is False


def test_healthz(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/healthz", timeout=10)
    assert Health.model_validate_json(response.content).status == "ok"


def test_openapi_publishes_verify_with_every_media_type(server: LiveServer) -> None:
    """The schema documents JSON, multipart and raw image bodies and the error responses."""
    schema = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    verify = schema["paths"]["/verify"]["post"]
    assert set(verify["requestBody"]["content"]) == {
        "application/json",
        "multipart/form-data",
        "image/png",
        "image/jpeg",
    }
    assert {"200", "413", "415", "422"} <= set(verify["responses"])
    assert {"/trust", "/healthz"} <= set(schema["paths"])


def test_no_docs_page_that_would_load_a_cdn(server: LiveServer) -> None:
    """FastAPI's /docs pulls scripts from a CDN: it is switched off (nothing loads from elsewhere)."""
    response = httpx.get(f"{server.url}/docs", timeout=10)
    assert _error(response, 404) == "request.not_found"


@pytest.mark.parametrize("path", ["/", "/verify", "/static/app.js"])
def test_security_headers_on_every_response(server: LiveServer, path: str) -> None:
    """CSP without inline script, frame-ancestors none, nosniff, no referrer on page, assets and API."""
    response = httpx.get(f"{server.url}{path}", timeout=10)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_results_are_not_cached(server: LiveServer, chain: Chain) -> None:
    response = _verify(server, {"qr": chain.valid()})
    assert response.headers["cache-control"] == "no-store"


def test_access_log_is_json_without_personal_data(server: LiveServer, chain: Chain) -> None:
    """Every log line is JSON; none holds the name, date of birth or HC1 text; verify lines hold the verdict."""
    hc1 = chain.valid()
    _ok(_verify(server, {"qr": hc1}))
    httpx.get(f"{server.url}/verify/{hc1[:40]}?name={HOLDER_FN}", timeout=10)
    lines = [line for line in server.log_lines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    text = "\n".join(lines)
    for secret in (HOLDER_FN, HOLDER_GN, HOLDER_DOB, "NGUYEN", hc1[:20], "127.0.0.1:"):
        assert secret not in text
    verifies = [r for r in records if r.get("route") == "/verify" and "verify" in r]
    assert verifies
    assert verifies[-1]["verify"] == {"status": "VALID", "codes": []}
    assert all(len(r["client"]) == 16 for r in verifies)
    assert any(r.get("route") == "other" for r in records)  # the raw path with HC1 text never logged


def test_stale_trust_turns_valid_into_needs_check(stale_server: LiveServer, chain: Chain) -> None:
    """Trust older than --max-trust-age: a genuine passport is NEEDS_CHECK, reason trust.stale."""
    result = _ok(_verify(stale_server, {"qr": chain.valid()}))
    assert result.status == "NEEDS_CHECK"
    assert [r.code for r in result.reasons] == ["trust.stale"]
    assert result.trust.fresh is False
    assert result.holder is not None  # the signature holds: the officer may compare and check by hand
    trust = TrustOut.model_validate_json(httpx.get(f"{stale_server.url}/trust", timeout=10).content)
    assert trust.fresh is False
