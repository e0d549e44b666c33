"""The transfer engines, driven through an in-memory link that drops, delays and
corrupts (no sockets, no clock): every chunk arrives once, a bad source is blamed."""

from __future__ import annotations

import hashlib

import pytest

from protocol.bundle import Manifest
from protocol.errors import MalformedError
from protocol.transfer import (
    Backoff,
    ChunkSet,
    Download,
    RateLimit,
    Route,
    SourceState,
    Upload,
    decode_mail_poll,
    encode_mail_poll,
    next_route,
)
from tests.protocol.helpers import NOW, FixedRng
from tests.protocol.test_bundle import seal

KiB = 1024


def _bundle(size: int = 600 * KiB) -> tuple[list[bytes], Manifest]:
    data = hashlib.shake_256(b"study").digest(size)
    chunks, manifest = seal([("ct/1.dcm", data)])
    return chunks, Manifest.decode(manifest, now=NOW)


def test_chunk_set_round_trips_and_refuses_bits_past_the_end() -> None:
    s = ChunkSet(11)
    assert [s.add(0), s.add(10), s.add(10)] == [True, True, False]
    assert (len(s), s.missing()[:3], 10 in s, 11 in s) == (2, [1, 2, 3], True, False)
    again = ChunkSet(11, s.to_bytes())
    assert again.missing() == s.missing()
    with pytest.raises(MalformedError, match="past the last"):
        ChunkSet(11, bytes([0, 0b1000]))
    with pytest.raises(MalformedError, match="is 2 bytes"):
        ChunkSet(11, b"\x00")
    with pytest.raises(MalformedError, match="outside"):
        s.add(11)
    assert ChunkSet.full(11).complete


def test_backoff_grows_is_capped_and_jittered_within_bounds() -> None:
    policy = Backoff(base_ms=1000, factor=2, cap_ms=60_000, jitter=0.5)
    rng = FixedRng("backoff")
    delays = [policy.delay(n, rng) for n in range(12)]
    for n, d in enumerate(delays):
        raw = min(60_000, 1000 * 2**n)
        assert raw // 2 <= d <= raw
    assert max(delays) <= 60_000
    assert delays[:3] != [policy.delay(n, FixedRng("other")) for n in range(3)]
    same = FixedRng("backoff")
    assert [policy.delay(n, same) for n in range(12)] == delays  # same seed, same delays


def test_upload_keeps_its_window_and_never_resends_an_acknowledged_chunk() -> None:
    _, manifest = _bundle()
    count = manifest.chunk_count
    assert count == 10
    up = Upload(manifest, window=3)
    have = ChunkSet(count)
    have.add(0)  # the destination already held chunk 0 (an earlier attempt)
    up.set_have(have)
    first = up.next_sends(NOW)
    assert first == [1, 2, 3]
    assert up.next_sends(NOW) == []  # window full
    up.on_ack(1, NOW + 100)
    up.on_failure(2, "connection reset")
    assert up.next_sends(NOW + 100) == [2, 4]
    up.reset_in_flight()  # the connection dropped
    sent: list[int] = []
    while not up.done:
        batch = up.next_sends(NOW + 200)
        assert batch
        sent += batch
        for i in batch:
            up.on_ack(i, NOW + 300)
    assert up.progressed
    assert {0, 1}.isdisjoint(sent)  # held, or acknowledged: never sent again
    assert sorted(sent) == list(range(2, count))
    assert up.bytes_done == manifest.ciphertext_size
    assert up.goodput.bytes_per_s


def test_download_from_two_sources_blames_and_bans_the_one_that_corrupts() -> None:
    chunks, manifest = _bundle()
    down = Download(manifest, rng=FixedRng("download"))
    down.add_source("relay", window=2)
    down.add_source("sender", window=2)
    now = NOW
    stored: dict[int, bytes] = {}
    for _ in range(200):  # bounded: a loop that never completes fails the test
        if down.complete:
            break
        for fetch in down.next_fetches(now):
            data = chunks[fetch.index]
            if fetch.source == "relay":
                data = data[:-1] + bytes([data[-1] ^ 1])  # a substituted chunk
            if down.on_chunk(fetch.source, fetch.index, data, now + 50):
                stored[fetch.index] = data
        now += 100
    assert down.complete
    assert stored == dict(enumerate(chunks))
    assert down.sources["relay"].state is SourceState.BANNED
    assert {b.source for b in down.blamed} == {"relay"}
    # banned at the third bad chunk; requests already answered in that round count too
    assert Download.MAX_BAD_CHUNKS <= len(down.blamed) <= Download.MAX_BAD_CHUNKS + 1
    assert "does not match the manifest" in down.blamed[0].reason


def test_download_waits_after_failures_then_resumes_where_it_stopped() -> None:
    chunks, manifest = _bundle()
    have = ChunkSet(manifest.chunk_count)
    for i in range(4):
        have.add(i)  # kept on disk before a restart
    down = Download(manifest, have, rng=FixedRng("d"), backoff=Backoff(base_ms=1000, jitter=0))
    down.add_source("sender")
    fetches = down.next_fetches(NOW)
    assert [f.index for f in fetches] == [4, 5, 6, 7]
    down.on_failure("sender", None, NOW, "connection refused")
    assert down.get_timer() == NOW + 1000
    assert down.next_fetches(NOW + 999) == []
    fetched: list[int] = []
    now = NOW + 1000
    for _ in range(50):
        if down.complete:
            break
        for f in down.next_fetches(now):
            fetched.append(f.index)
            assert down.on_chunk("sender", f.index, chunks[f.index], now)
        now += 10
    assert down.complete
    assert sorted(fetched) == list(range(4, manifest.chunk_count))
    assert down.get_timer() is None


def test_a_lossy_link_still_delivers_every_chunk_exactly_once() -> None:
    chunks, manifest = _bundle(2 * 1024 * KiB)
    rng = FixedRng("loss")
    down = Download(manifest, rng=rng, backoff=Backoff(base_ms=100, cap_ms=1000))
    down.add_source("sender", window=4)
    down.add_source("relay", window=4)
    stored = []
    now = NOW
    for _ in range(2000):
        if down.complete:
            break
        for fetch in down.next_fetches(now):
            if rng(1)[0] < 77:  # about 30 % of requests lost
                down.on_failure(fetch.source, fetch.index, now, "timeout")
            elif down.on_chunk(fetch.source, fetch.index, chunks[fetch.index], now + 20):
                stored.append(fetch.index)
        now = max(now + 50, down.get_timer() or 0)
    assert down.complete
    assert sorted(stored) == list(range(manifest.chunk_count))  # each stored once


def test_routes_go_direct_then_through_each_relay_in_turn() -> None:
    ways = [next_route(n, ["r1", "r2"], "reader") for n in range(4)]
    assert [(w.route, w.target) for w in ways] == [
        (Route.DIRECT, "reader"),
        (Route.RELAY, "r1"),
        (Route.RELAY, "r2"),
        (Route.DIRECT, "reader"),
    ]
    assert next_route(5, [], "reader").route is Route.DIRECT


def test_an_upload_that_acknowledged_nothing_has_not_progressed() -> None:
    _, manifest = _bundle()
    up = Upload(manifest)
    have = ChunkSet(manifest.chunk_count)
    have.add(3)
    up.set_have(have)
    (first, *_) = up.next_sends(NOW)
    up.on_failure(first, "connection refused")
    assert not up.progressed  # a dead link: back off
    up.on_ack(up.next_sends(NOW)[0], NOW + 10)
    assert up.progressed  # a link that works and broke: resume at once


def test_rate_limit_spaces_sends_to_the_rate_after_a_burst() -> None:
    limit = RateLimit(100_000, burst=50_000)  # 100 kB/s
    assert limit.delay(50_000, NOW) == 0  # the burst
    wait = limit.delay(50_000, NOW)
    assert wait == 501  # 50 kB at 100 kB/s, rounded up
    assert limit.delay(10_000, NOW + 2_000) == 0  # refilled meanwhile
    assert RateLimit(0).delay(10**9, NOW) == 0  # no cap


def test_mail_poll_proves_the_node_and_is_bounded_in_time() -> None:
    from protocol.errors import BadSignatureError, ExpiredError
    from tests.protocol.helpers import identity

    reader = identity("erasme")
    poll = encode_mail_poll(reader, NOW)
    assert decode_mail_poll(poll, NOW + 1000).key == reader.public.key
    with pytest.raises(ExpiredError):
        decode_mail_poll(poll, NOW + 6 * 60_000)
    forged = poll[:32] + (NOW + 1).to_bytes(8, "big") + poll[40:]
    with pytest.raises(BadSignatureError):
        decode_mail_poll(forged, NOW)
    with pytest.raises(MalformedError):
        decode_mail_poll(poll[:-1], NOW)
