"""Tests for vaxcred.qr.isolated: image decoding in a child process under a hard deadline."""

from __future__ import annotations

import gc
import io
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from PIL import Image, ImageDraw

from tests.interop.payloads import DAY, NOW, sample_dcc
from vaxcred import keys, qr
from vaxcred.cli import main
from vaxcred.errors import ImageError
from vaxcred.issue import IssuedPassport, issue
from vaxcred.qr import isolated as qr_isolated
from vaxcred.qr.isolated import DEFAULT_MEMORY_LIMIT, IsolatedImageDecoder
from vaxcred.result import Status, StepResult
from vaxcred.trust import TrustStore
from vaxcred.verify import verify

DATA = Path(__file__).resolve().parent / "data"
VN_IMAGE = (DATA / "vietnam" / "VAC_VN.png").read_bytes()  # a JPEG named .png, as published
VN_TEXT = (DATA / "vietnam" / "VAC_VN.qr.txt").read_text(encoding="ascii")
AFTER = NOW + DAY
#: generous: a safety bound on deadline + kill, not a speed test (CI machines are slow and shared)
SLACK = 1.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _finder_grid(size: tuple[int, int] = (1000, 1000), module: int = 1, gap: int = 1) -> bytes:
    """A page tiled with QR finder patterns (as benchmarks/bench_hostile.py builds it): zxing-cpp's
    detector pairs them all up, ~0.3 s in-process at 1 MP with 1-px modules."""
    im = Image.new("L", size, 255)
    draw = ImageDraw.Draw(im)
    step = (7 + gap) * module
    for y in range(0, size[1] - 7 * module, step):
        for x in range(0, size[0] - 7 * module, step):
            draw.rectangle((x, y, x + 7 * module - 1, y + 7 * module - 1), fill=0)
            draw.rectangle((x + module, y + module, x + 6 * module - 1, y + 6 * module - 1), fill=255)
            draw.rectangle((x + 2 * module, y + 2 * module, x + 5 * module - 1, y + 5 * module - 1), fill=0)
    return _png(im)


FINDER_GRID = _finder_grid()


def _gone(pid: int) -> bool:
    """Whether no process ``pid`` exists any more (not even a zombie: it was reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _live_pid(decoder: IsolatedImageDecoder) -> int:
    decoder.start()
    pid = decoder.pid
    assert pid is not None
    return pid


@pytest.fixture(scope="module")
def decoder() -> Iterator[IsolatedImageDecoder]:
    """One decoder for the module (spawned once); a deadline long enough for any real image on a busy CI
    machine: the tests that want a timeout pass a short one."""
    dec = IsolatedImageDecoder(deadline=5.0)
    dec.start()
    pids = [dec.pid]
    yield dec
    pids.append(dec.pid)
    dec.close()
    assert all(pid is None or _gone(pid) for pid in pids)


@pytest.fixture(scope="module")
def dsc() -> keys.KeyPair:
    return keys.make_dsc(keys.make_csca(now=NOW - 60 * DAY), now=NOW - DAY)


@pytest.fixture(scope="module")
def passport(dsc: keys.KeyPair) -> IssuedPassport:
    return issue(sample_dcc(), dsc.signer(), now=NOW)


@pytest.fixture(scope="module")
def store(dsc: keys.KeyPair) -> TrustStore:
    return TrustStore.from_dsc_certificates([dsc.certificate.public_bytes(Encoding.DER)])


# --- decoding -------------------------------------------------------------------------------------------


def test_vac_vn_decodes_to_the_exact_text(decoder: IsolatedImageDecoder) -> None:
    """The Viet Nam sample (a JPEG) decodes in the child to the published text, as in-process."""
    assert decoder.decode(VN_IMAGE) == VN_TEXT == qr.decode_image(VN_IMAGE)


def test_rendered_png_round_trips(decoder: IsolatedImageDecoder, passport: IssuedPassport) -> None:
    assert decoder.decode(qr.render_png(passport.hc1)) == passport.hc1


def test_child_errors_come_back_with_their_code(decoder: IsolatedImageDecoder) -> None:
    """An ImageError raised in the child is raised again with the same code and message."""
    blank = _png(Image.new("L", (200, 200), 255))
    with pytest.raises(ImageError) as inproc:
        qr.decode_image(blank)
    with pytest.raises(ImageError) as isolated:
        decoder.decode(blank)
    assert (isolated.value.code, isolated.value.message) == (inproc.value.code, inproc.value.message)
    assert isolated.value.code == "image.no_qr"


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_give_a_typed_error(decoder: IsolatedImageDecoder, seed: int) -> None:
    """Random bytes, bare or behind PNG/JPEG magic (so they reach the child's parsers), raise ImageError."""
    rng = random.Random(seed)
    body = rng.randbytes(rng.choice((0, 1, 100, 5000, 200_000)))
    for data in (body, b"\x89PNG\r\n\x1a\n" + body, b"\xff\xd8\xff" + body):
        with pytest.raises(ImageError):
            decoder.decode(data)
    assert decoder.decode(VN_IMAGE) == VN_TEXT


def test_byte_caps_are_checked_before_sending(decoder: IsolatedImageDecoder) -> None:
    """Over a byte cap or not an image: refused in the parent, the child is not disturbed."""
    pid = _live_pid(decoder)
    too_big = b"\xff\xd8\xff" + bytes(qr.MAX_JPEG_BYTES)
    with pytest.raises(ImageError) as e:
        decoder.decode(too_big)
    assert e.value.code == "image.too_large"
    with pytest.raises(ImageError) as e:
        decoder.decode(b"GIF89a" + bytes(100))
    assert e.value.code == "image.unsupported"
    with pytest.raises(ImageError) as e:
        IsolatedImageDecoder(max_bytes=100).decode(VN_IMAGE)  # no child is ever started for this
    assert e.value.code == "image.too_large"
    assert decoder.pid == pid


def test_caller_mistakes_raise_plain_errors(decoder: IsolatedImageDecoder) -> None:
    with pytest.raises(TypeError):
        decoder.decode("HC1:not bytes")  # type: ignore[arg-type]
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            decoder.decode(VN_IMAGE, deadline=bad)
        with pytest.raises(ValueError):
            IsolatedImageDecoder(deadline=bad)
    with pytest.raises(ValueError):
        IsolatedImageDecoder(memory_limit=0)


# --- deadline, crashes, recovery ------------------------------------------------------------------------


def test_finder_grid_times_out_within_the_deadline(decoder: IsolatedImageDecoder) -> None:
    """The known slow case is cut off: image.timeout soon after the deadline, the child killed and reaped
    before the next request, which decodes as usual."""
    pid = _live_pid(decoder)
    start = time.perf_counter()
    with pytest.raises(ImageError) as e:
        decoder.decode(FINDER_GRID, deadline=0.05)
    elapsed = time.perf_counter() - start
    assert e.value.code == "image.timeout"
    assert elapsed < SLACK
    assert decoder.pid is None, "the timed-out child is gone"
    assert decoder.decode(VN_IMAGE) == VN_TEXT  # a fresh child
    assert _live_pid(decoder) != pid
    assert _gone(pid)


def test_finder_grid_decodes_given_time(decoder: IsolatedImageDecoder) -> None:
    """With time enough, the child answers as decode_image would (no QR code there)."""
    with pytest.raises(ImageError) as e:
        decoder.decode(FINDER_GRID, deadline=30.0)
    assert e.value.code == "image.no_qr"


def test_child_killed_while_decoding_is_a_crash_then_recovers(decoder: IsolatedImageDecoder) -> None:
    """A child that dies mid-request (a segfault in a parser, simulated with a signal) gives
    image.decoder_crashed; the next request gets a new child."""
    pid = _live_pid(decoder)
    timer = threading.Timer(0.1, os.kill, (pid, signal.SIGSEGV))
    timer.start()
    try:
        with pytest.raises(ImageError) as e:
            decoder.decode(FINDER_GRID, deadline=30.0)
    finally:
        timer.cancel()
    assert e.value.code == "image.decoder_crashed"
    assert "SIGSEGV" in e.value.message
    assert _gone(pid)
    assert decoder.decode(VN_IMAGE) == VN_TEXT
    assert decoder.pid != pid


def test_child_dead_between_requests_is_replaced_silently(decoder: IsolatedImageDecoder) -> None:
    """A child killed while idle (OOM killer, an operator) did not fail the next request: it is replaced."""
    pid = _live_pid(decoder)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while not _exited(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert decoder.decode(VN_IMAGE) == VN_TEXT
    assert decoder.pid != pid
    assert _gone(pid)


class _Interrupted(BaseException):
    pass


def _interrupt(signum: int, frame: object) -> None:
    raise _Interrupted


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_interrupted_request_does_not_leave_a_late_reply(decoder: IsolatedImageDecoder) -> None:
    """Ctrl-C (here: an exception from a signal handler) while waiting: the child is dropped, so the
    grid's late answer can never be taken for the next image's."""
    pid = _live_pid(decoder)
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(_Interrupted):
            decoder.decode(FINDER_GRID, deadline=30.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert decoder.decode(qr.render_png("HC1:NEXT")) == "HC1:NEXT"
    assert decoder.pid != pid


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff",
        b"[]",
        b"{}",
        b'{"text": 1}',
        b'{"code": "x.y", "message": "m"}',
        b'{"code": "image.no_qr"}',
    ],
)
def test_replies_off_protocol_are_refused(body: bytes) -> None:
    assert qr_isolated._parse_reply(body) is None


def test_replies_on_protocol() -> None:
    assert qr_isolated._parse_reply(b'{"text": "HC1:X"}') == ("HC1:X", None, False)
    text, error, exiting = qr_isolated._parse_reply(
        b'{"code": "image.corrupt", "message": "m", "exit": true}'
    ) or ("", None, False)
    assert (text, exiting) == (None, True)
    assert isinstance(error, ImageError)
    assert (error.code, error.message) == ("image.corrupt", "m")


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie counts), from /proc where there is one."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: assume the signal has landed
        time.sleep(0.1)
        return True


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="needs /proc")
def test_child_address_space_is_limited(decoder: IsolatedImageDecoder) -> None:
    pid = _live_pid(decoder)
    limits = Path(f"/proc/{pid}/limits").read_text(encoding="ascii")
    line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
    assert line.split()[3:5] == [str(DEFAULT_MEMORY_LIMIT)] * 2  # soft and hard
    core = next(x for x in limits.splitlines() if x.startswith("Max core file size"))
    assert core.split()[4] == "0"


def test_concurrent_callers_share_one_decoder(decoder: IsolatedImageDecoder) -> None:
    """Requests from several threads are serialised by the lock; every one gets its own answer."""
    rendered = qr.render_png("HC1:THREADS")
    results: list[str] = []

    def work(data: bytes) -> None:
        for _ in range(5):
            results.append(decoder.decode(data))

    threads = [threading.Thread(target=work, args=(d,)) for d in (VN_IMAGE, rendered, VN_IMAGE, rendered)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted([VN_TEXT] * 10 + ["HC1:THREADS"] * 10)


# --- life cycle -----------------------------------------------------------------------------------------


def test_close_reaps_the_child_and_is_final() -> None:
    with IsolatedImageDecoder() as dec:
        assert dec.pid is None  # lazy: nothing started yet
        pid = _live_pid(dec)
    assert _gone(pid)
    assert dec.pid is None
    dec.close()  # idempotent
    with pytest.raises(ValueError):
        dec.decode(VN_IMAGE)
    with pytest.raises(ValueError):
        dec.start()


def test_garbage_collection_reaps_the_child() -> None:
    dec = IsolatedImageDecoder()
    pid = _live_pid(dec)
    del dec
    gc.collect()
    assert _gone(pid)


def test_timed_out_child_is_reaped_on_close() -> None:
    dec = IsolatedImageDecoder()
    pid = _live_pid(dec)
    with pytest.raises(ImageError):
        dec.decode(FINDER_GRID, deadline=0.02)
    dec.close()
    assert _gone(pid)


# --- verify() and the CLI -------------------------------------------------------------------------------


def test_verify_with_the_isolated_decoder(
    decoder: IsolatedImageDecoder, passport: IssuedPassport, store: TrustStore
) -> None:
    """verify(image_decoder=...) reads a rendered passport in the child: VALID, the same steps as text."""
    result = verify(qr.render_png(passport.hc1), store, now=AFTER, image_decoder=decoder.decode)
    assert result.status is Status.VALID
    assert result.steps == verify(passport.hc1, store, now=AFTER).steps


def test_verify_reports_a_timeout_as_a_failed_step(decoder: IsolatedImageDecoder, store: TrustStore) -> None:
    def hasty(data: bytes) -> str:
        return decoder.decode(data, deadline=0.05)

    result = verify(FINDER_GRID, store, now=AFTER, image_decoder=hasty)
    assert result.status is Status.INVALID
    first = result.steps[0]
    assert (first.name, first.result, first.code) == ("prefix", StepResult.FAIL, "image.timeout")


def test_verify_default_still_decodes_in_process(passport: IssuedPassport, store: TrustStore) -> None:
    assert verify(qr.render_png(passport.hc1), store, now=AFTER).status is Status.VALID


@pytest.fixture(scope="module")
def dsc_pem(dsc: keys.KeyPair, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("isolated") / "dsc.pem"
    path.write_bytes(dsc.certificate.public_bytes(Encoding.PEM))
    return path


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["verify", *args, "--at", AFTER.isoformat(), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_cli_verifies_an_image_in_a_child(
    passport: IssuedPassport, dsc_pem: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "qr.png"
    image.write_bytes(qr.render_png(passport.hc1))
    code, doc = _cli([str(image), "--dsc", str(dsc_pem)], capsys)
    assert (code, doc["status"]) == (0, "VALID")
    code, doc = _cli([str(image), "--dsc", str(dsc_pem), "--image-deadline", "2"], capsys)
    assert (code, doc["status"]) == (0, "VALID")


def test_cli_image_deadline_cuts_off_the_finder_grid(
    dsc_pem: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "grid.png"
    image.write_bytes(FINDER_GRID)
    start = time.perf_counter()
    code, doc = _cli([str(image), "--dsc", str(dsc_pem), "--image-deadline", "0.05"], capsys)
    assert (code, doc["status"]) == (1, "INVALID")
    assert doc["steps"]["prefix"]["code"] == "image.timeout"  # type: ignore[index]
    assert time.perf_counter() - start < 10  # start-up included: a loose bound


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "soon"])
def test_cli_rejects_a_bad_image_deadline(dsc_pem: Path, bad: str) -> None:
    assert main(["verify", str(dsc_pem), "--dsc", str(dsc_pem), "--image-deadline", bad]) == 3


def test_the_decoder_child_writes_nothing_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    """Starting the child and decoding leave stderr empty (was: runpy's RuntimeWarning about running
    vaxcred.qr.isolated as __main__ after the package had imported it, on every `vaxcred verify IMAGE`)."""
    decoder = IsolatedImageDecoder()
    try:
        decoder.start()
        assert decoder.decode(qr.render_png("HC1:ABC")) == "HC1:ABC"
    finally:
        decoder.close()
    assert capfd.readouterr().err == ""
