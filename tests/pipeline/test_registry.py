"""Registry check: the matching rule, the table registry, and the HTTP adapter against a real loopback server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import socket
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vaxcred.model import DateOfBirth
from vaxcred.pipeline.errors import PipelineError
from vaxcred.pipeline.records.cccd import Gender, IdType
from vaxcred.pipeline.records.model import Person
from vaxcred.pipeline.records.names import NameDifference
from vaxcred.pipeline.registry.http import HttpRegistry
from vaxcred.pipeline.registry.lookup import (
    PopulationRegistry,
    RegistryEntry,
    RegistryResult,
    RegistryStatus,
    TableRegistry,
    dates_of_birth_match,
    match,
    write_registry_csv,
)

NOW = dt.datetime(2022, 4, 20, 8, 30, tzinfo=dt.UTC)
ID = "001085012345"
ENTRY = RegistryEntry(citizen_id=ID, full_name="Nguyễn Văn Đức", dob="1985-03-17", gender=Gender.MALE)


def _person(
    *,
    citizen_id: str = ID,
    id_type: IdType = IdType.CCCD,
    name: str = "Nguyễn Văn Đức",
    dob: str = "1985-03-17",
    gender: Gender = Gender.MALE,
) -> Person:
    return Person(
        citizen_id=citizen_id, id_type=id_type, full_name=name, dob=DateOfBirth.from_text(dob), gender=gender
    )


# ---------------------------------------------------------------------------------------------------- match


def test_matching_person_is_verified_with_the_check_time() -> None:
    """Same name, dob and gender: VERIFIED, stamped with now."""
    result = match(_person(), ENTRY, now=NOW)
    assert result == RegistryResult(
        citizen_id=ID,
        status=RegistryStatus.VERIFIED,
        mismatch_fields=(),
        name_difference=NameDifference.NONE,
        checked_at=NOW,
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("NGUYỄN VĂN ĐỨC", NameDifference.CASE),
        ("Nguyễn  Văn Đức", NameDifference.SPACING),
    ],
)
def test_matching_name_differences_verify_and_are_recorded(name: str, kind: NameDifference) -> None:
    """Case and spacing still verify, and the kind is kept."""
    result = match(_person(name=name), ENTRY, now=NOW)
    assert result.status is RegistryStatus.VERIFIED
    assert result.name_difference is kind


def test_registry_names_in_nfd_verify_as_a_unicode_form_difference() -> None:
    """Records are NFC (parse_row); a registry answering in NFD still verifies."""
    entry = dataclasses.replace(ENTRY, full_name=unicodedata.normalize("NFD", ENTRY.full_name))
    result = match(_person(), entry, now=NOW)
    assert result.status is RegistryStatus.VERIFIED
    assert result.name_difference is NameDifference.UNICODE_FORM


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Nguyen Van Duc", NameDifference.TONE_MARKS),
        ("Nguyễn Văn Dức", NameDifference.D_STROKE),
        ("Nguyễn Đức", NameDifference.OTHER),
    ],
)
def test_name_mismatch_names_the_field_and_the_kind(name: str, kind: NameDifference) -> None:
    """Tone marks, đ/d and other differences are MISMATCH on name."""
    result = match(_person(name=name), ENTRY, now=NOW)
    assert result.status is RegistryStatus.MISMATCH
    assert result.mismatch_fields == ("name",)
    assert result.name_difference is kind


def test_wrong_dob_day_is_a_dob_mismatch() -> None:
    """Same year (so the CCCD is consistent), another day."""
    result = match(_person(dob="1985-03-18"), ENTRY, now=NOW)
    assert result.status is RegistryStatus.MISMATCH
    assert result.mismatch_fields == ("dob",)


def test_wrong_gender_on_a_cmnd_is_a_gender_mismatch() -> None:
    """A CMND carries no gender digit, so only the registry can catch it."""
    entry = RegistryEntry(citizen_id="012345678", full_name="Trần Thị Lan", dob="1970", gender=Gender.FEMALE)
    person = _person(citizen_id="012345678", id_type=IdType.CMND, name="Trần Thị Lan", dob="1970")
    result = match(dataclasses.replace(person, gender=Gender.MALE), entry, now=NOW)
    assert result.mismatch_fields == ("gender",)
    assert (
        match(dataclasses.replace(person, gender=Gender.UNKNOWN), entry, now=NOW).status
        is RegistryStatus.VERIFIED
    )


def test_several_mismatching_fields_are_listed_in_order() -> None:
    """Fields come in the order name, dob, gender."""
    entry = RegistryEntry(
        citizen_id="012345678", full_name="Trần Thị Lan", dob="1970-05-02", gender=Gender.FEMALE
    )
    person = _person(citizen_id="012345678", id_type=IdType.CMND, name="Tran Thi Lan", dob="1970-02-05")
    result = match(person, entry, now=NOW)
    assert result.mismatch_fields == ("name", "dob", "gender")


def test_absent_entry_is_not_found() -> None:
    """entry None: NOT_FOUND, no fields, no name compared."""
    result = match(_person(), None, now=NOW)
    assert result.status is RegistryStatus.NOT_FOUND
    assert result.mismatch_fields == ()
    assert result.name_difference is NameDifference.NONE


@pytest.mark.parametrize(
    ("person", "fields"),
    [
        (_person(citizen_id="003085012345"), ()),  # unknown province: malformed
        (_person(citizen_id="01234567", id_type=IdType.CMND), ()),
        (_person(dob="1986-03-17"), ("dob",)),  # digits 5–6 say 85
        (_person(gender=Gender.FEMALE), ("gender",)),
    ],
)
def test_malformed_or_inconsistent_ids_are_invalid_id(person: Person, fields: tuple[str, ...]) -> None:
    """INVALID_ID comes first, even when the registry has an entry; inconsistencies name the field."""
    for entry in (ENTRY, None):
        result = match(person, entry if entry and entry.citizen_id == person.citizen_id else None, now=NOW)
        assert result.status is RegistryStatus.INVALID_ID
        assert result.mismatch_fields == fields


@pytest.mark.parametrize(
    ("recorded", "registry", "same"),
    [
        ("1985-03-17", "1985-03-17", True),
        ("1985", "1985-03-17", True),  # year-only record: compare the year
        ("1985-03", "1985-03-17", True),
        ("1985-03-17", "1985", True),  # the registry knows less
        ("1985-03", "1985-04-17", False),
        ("1984", "1985-03-17", False),
        ("1985-03-18", "1985-03-17", False),
        ("", "", True),
        ("", "1985-03-17", False),  # nothing recorded: nothing verified
        ("1985-03-17", "", False),
    ],
)
def test_partial_dates_of_birth_compare_at_the_common_precision(
    recorded: str, registry: str, same: bool
) -> None:
    """The dob rule: every component both sides know must agree; at least the year unless both are empty."""
    assert dates_of_birth_match(DateOfBirth.from_text(recorded), DateOfBirth.from_text(registry)) is same


def test_year_only_record_against_full_registry_date_verifies() -> None:
    """Older people recorded with a birth year only verify against the registry's full date."""
    assert match(_person(dob="1985"), ENTRY, now=NOW).status is RegistryStatus.VERIFIED


def test_now_must_be_aware_and_is_stored_as_utc() -> None:
    """A naive now is a caller mistake; an aware one is converted to UTC."""
    with pytest.raises(ValueError):
        match(_person(), ENTRY, now=dt.datetime(2022, 4, 20, 8, 30))
    hanoi = dt.timezone(dt.timedelta(hours=7))
    result = match(_person(), ENTRY, now=dt.datetime(2022, 4, 20, 15, 30, tzinfo=hanoi))
    assert result.checked_at == NOW
    assert result.checked_at.tzinfo is dt.UTC


def test_entry_for_another_id_is_a_caller_mistake() -> None:
    """match() does not compare two different people."""
    other = RegistryEntry(
        citizen_id="001085099999", full_name="Nguyễn Văn Đức", dob="1985", gender=Gender.MALE
    )
    with pytest.raises(ValueError):
        match(_person(), other, now=NOW)


def test_results_and_entries_mask_personal_data_in_repr() -> None:
    """repr() shows neither the ID prefix nor the name nor the full dob."""
    text = repr(match(_person(), ENTRY, now=NOW)) + repr(ENTRY)
    assert "001085" not in text
    assert "Nguyễn" not in text
    assert "03-17" not in text


def test_registry_result_invariants() -> None:
    """A MISMATCH names fields; a VERIFIED does not; checked_at is UTC."""
    with pytest.raises(ValueError):
        RegistryResult(citizen_id=ID, status=RegistryStatus.MISMATCH, checked_at=NOW)
    with pytest.raises(ValueError):
        RegistryResult(
            citizen_id=ID, status=RegistryStatus.VERIFIED, mismatch_fields=("name",), checked_at=NOW
        )
    with pytest.raises(ValueError):
        RegistryResult(
            citizen_id=ID, status=RegistryStatus.MISMATCH, mismatch_fields=("dob", "name"), checked_at=NOW
        )
    with pytest.raises(ValueError):
        RegistryResult(citizen_id=ID, status=RegistryStatus.VERIFIED, checked_at=NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"citizen_id": ID, "full_name": "A B", "dob": "1985-13", "gender": "M"}, "dob"),
        ({"citizen_id": ID, "full_name": "A B", "dob": "1985", "gender": "X"}, "gender"),
        ({"citizen_id": ID, "full_name": "", "dob": "1985", "gender": "M"}, "full_name"),
        ({"citizen_id": ID, "full_name": "A B", "dob": 1985, "gender": "M"}, "dob"),
        ({"full_name": "A B", "dob": "1985", "gender": "M"}, "citizen_id"),
    ],
)
def test_invalid_registry_entries_are_refused(fields: dict[str, object], field: str) -> None:
    """Registry data is untrusted: pipeline.bad_registry_data naming the field."""
    with pytest.raises(PipelineError) as info:
        RegistryEntry.from_fields(fields)
    assert info.value.code == "pipeline.bad_registry_data"
    assert info.value.field == field


# ---------------------------------------------------------------------------------------------------- table


def _entries(n: int) -> list[RegistryEntry]:
    return [
        RegistryEntry(
            citizen_id=f"001085{i:06d}",
            full_name=f"Nguyễn Văn Đức {chr(65 + i % 26)}",
            dob="1985",
            gender=Gender.MALE,
        )
        for i in range(n)
    ]


def test_table_registry_looks_up_a_batch() -> None:
    """Found IDs map to their entries; absent IDs are simply not in the answer."""
    entries = _entries(5)
    registry = TableRegistry(entries)
    answer = registry.lookup([entries[1].citizen_id, "001085999999", entries[3].citizen_id])
    assert dict(answer) == {entries[1].citizen_id: entries[1], entries[3].citizen_id: entries[3]}
    assert len(registry) == 5
    assert isinstance(registry, PopulationRegistry)


def test_table_registry_refuses_duplicates_and_bare_strings() -> None:
    """Duplicate IDs are a data error; a str is not a sequence of IDs."""
    with pytest.raises(ValueError):
        TableRegistry([ENTRY, ENTRY])
    with pytest.raises(PipelineError) as info:
        TableRegistry.from_rows([ENTRY.to_fields(), ENTRY.to_fields()])
    assert "row 2" in info.value.message
    assert ID not in info.value.message
    with pytest.raises(TypeError):
        TableRegistry([ENTRY]).lookup(ID)


def test_table_registry_csv_round_trip(tmp_path: Path) -> None:
    """write_registry_csv then from_csv gives the same entries (UTF-8, Vietnamese names intact)."""
    path = tmp_path / "registry.csv"
    entries = _entries(30)
    assert write_registry_csv(path, entries) == 30
    registry = TableRegistry.from_csv(path)
    assert dict(registry.lookup([e.citizen_id for e in entries])) == {e.citizen_id: e for e in entries}


def test_table_registry_csv_accepts_a_bom_and_reports_bad_lines(tmp_path: Path) -> None:
    """Excel's BOM is tolerated; a bad line is reported by number without its content."""
    path = tmp_path / "registry.csv"
    path.write_text(
        "\ufeffcitizen_id,full_name,dob,gender\n001085012345,Nguyễn Văn Đức,1985-03-17,M\n001085012346,Lê Lan,1985-02-30,F\n",
        encoding="utf-8",
    )
    with pytest.raises(PipelineError) as info:
        TableRegistry.from_csv(path)
    assert info.value.code == "pipeline.bad_registry_data"
    assert "line 3" in info.value.message
    assert "001085012346" not in info.value.message
    path.write_text("citizen_id,full_name,gender\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="dob"):
        TableRegistry.from_csv(path)


# ---------------------------------------------------------------------------------------------------- HTTP

Respond = Callable[[int, list[str]], "tuple[int, bytes] | str"]


@dataclass
class FakeRegistryServer:
    """A real HTTP server on 127.0.0.1 (random port) whose answers a test scripts."""

    respond: Respond
    requests: list[list[str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""


def _table_answer(table: dict[str, RegistryEntry]) -> Respond:
    def respond(call: int, ids: list[str]) -> tuple[int, bytes]:
        results = [table[i].to_fields() for i in ids if i in table]
        return 200, json.dumps({"results": results}, ensure_ascii=False).encode("utf-8")

    return respond


@pytest.fixture
def serve() -> Iterator[Callable[[Respond], FakeRegistryServer]]:
    """Start scripted registry servers; all are shut down (and hanging handlers released) afterwards."""
    started: list[tuple[ThreadingHTTPServer, threading.Thread, FakeRegistryServer]] = []

    def start(respond: Respond) -> FakeRegistryServer:
        fake = FakeRegistryServer(respond=respond)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ids = json.loads(body)["ids"]
                with lock:
                    call = len(fake.requests)
                    fake.requests.append(ids)
                    fake.paths.append(self.path)
                    fake.headers.append(dict(self.headers.items()))
                answer = fake.respond(call, ids)
                if answer == "hang":
                    fake.release.wait(10)
                    return
                assert not isinstance(answer, str)
                status, payload = answer
                try:
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        fake.url = f"http://127.0.0.1:{server.server_address[1]}"
        started.append((server, thread, fake))
        return fake

    yield start
    for server, thread, fake in started:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class Sleeps(list[float]):
    """An injected sleep that records the backoff delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


TABLE = {e.citizen_id: e for e in _entries(40)}


def _http(url: str, **kwargs: object) -> HttpRegistry:
    kwargs.setdefault("proxies", {})
    return HttpRegistry(url, **kwargs)  # type: ignore[arg-type]


def test_http_registry_answers_like_the_table(serve: Callable[[Respond], FakeRegistryServer]) -> None:
    """Found entries come back intact (Vietnamese names in UTF-8 JSON); unknown IDs are absent."""
    fake = serve(_table_answer(TABLE))
    ids = [*list(TABLE)[:3], "001085999999"]
    answer = _http(fake.url).lookup(ids)
    assert dict(answer) == dict(TableRegistry(TABLE.values()).lookup(ids))
    assert fake.paths == ["/lookup"]
    assert fake.headers[0]["Content-Type"] == "application/json"


def test_http_registry_posts_to_base_url_lookup_with_extra_headers(
    serve: Callable[[Respond], FakeRegistryServer],
) -> None:
    """A base URL with a path and a trailing slash gives {base}/lookup; configured headers are sent."""
    fake = serve(_table_answer(TABLE))
    _http(fake.url + "/api/v1/", headers={"Authorization": "Bearer t0ken"}).lookup([next(iter(TABLE))])
    assert fake.paths == ["/api/v1/lookup"]
    assert fake.headers[0]["Authorization"] == "Bearer t0ken"


@pytest.mark.parametrize(("n", "batch_size"), [(23, 5), (40, 40), (40, 7), (1, 500)])
def test_http_registry_batches(
    serve: Callable[[Respond], FakeRegistryServer], n: int, batch_size: int
) -> None:
    """n IDs go out in ceil(n / batch_size) requests of at most batch_size, each ID once."""
    fake = serve(_table_answer(TABLE))
    ids = list(TABLE)[:n]
    answer = _http(fake.url, batch_size=batch_size).lookup(ids + ids[:3])  # duplicates are asked once
    assert len(fake.requests) == math.ceil(n / batch_size)
    assert all(len(batch) <= batch_size for batch in fake.requests)
    assert [i for batch in fake.requests for i in batch] == ids
    assert set(answer) == set(ids)


def test_http_registry_sends_nothing_for_no_ids(serve: Callable[[Respond], FakeRegistryServer]) -> None:
    """An empty lookup makes no request."""
    fake = serve(_table_answer(TABLE))
    assert dict(_http(fake.url).lookup([])) == {}
    assert fake.requests == []


def test_http_registry_retries_503_twice_then_succeeds(
    serve: Callable[[Respond], FakeRegistryServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Two 503s then an answer: three requests, exponential backoff, and the IDs never logged."""
    table_answer = _table_answer(TABLE)

    def flaky(call: int, ids: list[str]) -> tuple[int, bytes] | str:
        return (503, b'{"error": "busy"}') if call < 2 else table_answer(call, ids)

    fake = serve(flaky)
    sleeps = Sleeps()
    ids = list(TABLE)[:4]
    with caplog.at_level(logging.DEBUG, logger="vaxcred.pipeline.registry.lookup"):
        answer = _http(fake.url, retries=3, backoff=0.2, sleep=sleeps).lookup(ids)
    assert set(answer) == set(ids)
    assert len(fake.requests) == 3
    assert sleeps == [0.2, 0.4]
    assert "HTTP 503" in caplog.text
    assert not any(i in caplog.text or i[-6:] in caplog.text for i in ids)


def test_http_registry_retries_with_real_backoff(serve: Callable[[Respond], FakeRegistryServer]) -> None:
    """Without an injected sleep the backoff really waits (0.05 + 0.1 s here)."""
    table_answer = _table_answer(TABLE)
    fake = serve(lambda call, ids: (502, b"") if call < 2 else table_answer(call, ids))
    started = time.monotonic()
    _http(fake.url, backoff=0.05).lookup(list(TABLE)[:1])
    assert time.monotonic() - started >= 0.15


def test_http_registry_gives_up_after_the_retries(serve: Callable[[Respond], FakeRegistryServer]) -> None:
    """A registry that keeps failing: retries + 1 attempts, then pipeline.registry_unavailable."""
    fake = serve(lambda call, ids: (500, b"oops"))
    with pytest.raises(PipelineError) as info:
        _http(fake.url, retries=2, sleep=Sleeps()).lookup(list(TABLE)[:2])
    assert info.value.code == "pipeline.registry_unavailable"
    assert len(fake.requests) == 3


def test_http_registry_times_out_on_a_hanging_server(serve: Callable[[Respond], FakeRegistryServer]) -> None:
    """A server that never answers: each attempt times out, then registry_unavailable, quickly."""
    fake = serve(lambda call, ids: "hang")
    started = time.monotonic()
    with pytest.raises(PipelineError) as info:
        _http(fake.url, timeout=0.3, retries=1, sleep=Sleeps()).lookup(list(TABLE)[:2])
    elapsed = time.monotonic() - started
    assert info.value.code == "pipeline.registry_unavailable"
    assert "timeout" in info.value.message
    assert len(fake.requests) == 2
    assert elapsed < 3


def test_http_registry_retries_429(serve: Callable[[Respond], FakeRegistryServer]) -> None:
    """Too Many Requests is transient."""
    table_answer = _table_answer(TABLE)
    fake = serve(lambda call, ids: (429, b"") if call == 0 else table_answer(call, ids))
    assert len(_http(fake.url, sleep=Sleeps()).lookup(list(TABLE)[:1])) == 1
    assert len(fake.requests) == 2


def test_http_registry_unreachable_is_unavailable() -> None:
    """Connection refused (nothing listens on the port) is retried, then registry_unavailable."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    with pytest.raises(PipelineError) as info:
        _http(f"http://127.0.0.1:{port}", retries=2, sleep=sleeps).lookup([ID])
    assert info.value.code == "pipeline.registry_unavailable"
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_http_registry_4xx_is_rejected_without_retry(
    serve: Callable[[Respond], FakeRegistryServer], status: int
) -> None:
    """A client error will not go away by retrying: pipeline.registry_rejected after one request."""
    fake = serve(lambda call, ids: (status, b'{"error": "no"}'))
    with pytest.raises(PipelineError) as info:
        _http(fake.url, sleep=Sleeps()).lookup(list(TABLE)[:2])
    assert info.value.code == "pipeline.registry_rejected"
    assert str(status) in info.value.message
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_http_registry_does_not_follow_redirects(
    serve: Callable[[Respond], FakeRegistryServer], status: int
) -> None:
    """Citizen IDs are never re-posted to another address."""
    fake = serve(lambda call, ids: (status, b""))
    with pytest.raises(PipelineError) as info:
        _http(fake.url, sleep=Sleeps()).lookup(list(TABLE)[:1])
    assert info.value.code == "pipeline.registry_rejected"
    assert len(fake.requests) == 1


def test_http_registry_refuses_garbage_json(serve: Callable[[Respond], FakeRegistryServer]) -> None:
    """A body that is not JSON: pipeline.registry_bad_response, not retried."""
    fake = serve(lambda call, ids: (200, b"<html>Service Unavailable</html>"))
    with pytest.raises(PipelineError) as info:
        _http(fake.url, sleep=Sleeps()).lookup(list(TABLE)[:2])
    assert info.value.code == "pipeline.registry_bad_response"
    assert len(fake.requests) == 1


def _result(citizen_id: str = "001085000001", **changes: object) -> dict[str, object]:
    return {**TABLE[citizen_id].to_fields(), **changes}


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"results": {}}',
        b'{"result": []}',
        b'{"results": [1]}',
        json.dumps({"results": [_result(gender="Nam")]}).encode(),
        json.dumps({"results": [_result(dob="17/03/1985")]}).encode(),
        json.dumps({"results": [_result(full_name=None)]}).encode(),
        json.dumps({"results": [{"citizen_id": "001085000001"}]}).encode(),
        json.dumps({"results": [_result("001085000009")]}).encode(),  # not asked for
        json.dumps({"results": [_result(), _result()]}).encode(),  # repeated
        b'{"results": [], "results": []}',  # duplicate keys
        '{"results": [{"citizen_id": "001085000001", "full_name": "Nguy\u1ec5n"}]}'.encode("utf-16"),
        b"\xff\xfe\x00",
        b"[" * 100_000,
    ],
)
def test_http_registry_validates_answers_strictly(
    serve: Callable[[Respond], FakeRegistryServer], body: bytes
) -> None:
    """Wrong shapes, types, values, unasked or repeated IDs, duplicate keys, bad encodings: registry_bad_response."""
    fake = serve(lambda call, ids: (200, body))
    with pytest.raises(PipelineError) as info:
        _http(fake.url, sleep=Sleeps()).lookup(["001085000001", "001085000002"])
    assert info.value.code == "pipeline.registry_bad_response"
    assert "001085000001" not in info.value.message


def test_http_registry_ignores_extra_keys_in_results(serve: Callable[[Respond], FakeRegistryServer]) -> None:
    """Forward compatibility: unknown keys in a result object are ignored."""
    fake = serve(lambda call, ids: (200, json.dumps({"results": [_result(address="Hà Nội")]}).encode()))
    assert dict(_http(fake.url).lookup(["001085000001"])) == {"001085000001": TABLE["001085000001"]}


def test_http_registry_caps_the_response_size(serve: Callable[[Respond], FakeRegistryServer]) -> None:
    """An answer beyond max_response_bytes is refused without reading it all."""
    fake = serve(lambda call, ids: (200, b'{"results": []}' + b" " * 10_000))
    with pytest.raises(PipelineError) as info:
        _http(fake.url, max_response_bytes=1000).lookup(["001085000001"])
    assert info.value.code == "pipeline.registry_bad_response"


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("ftp://registry.example/", {}),
        ("file:///etc/passwd", {}),
        ("registry.example", {}),
        ("https://registry.example/?q=1", {}),
        ("https://registry.example", {"batch_size": 0}),
        ("https://registry.example", {"retries": -1}),
        ("https://registry.example", {"timeout": 0}),
    ],
)
def test_http_registry_configuration_is_checked(url: str, kwargs: dict[str, object]) -> None:
    """Only http(s) base URLs and sane numbers; nothing is sent at construction."""
    with pytest.raises(ValueError):
        HttpRegistry(url, **kwargs)  # type: ignore[arg-type]


def test_http_registry_is_a_population_registry() -> None:
    """Both adapters satisfy the protocol."""
    assert isinstance(HttpRegistry("https://registry.example"), PopulationRegistry)
