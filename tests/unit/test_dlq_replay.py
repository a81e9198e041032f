from pathlib import Path

from streams.offline.replay import Pacer, in_range, read_log
from streams.records.dead_letter import DeadLetter


def test_dlq_keeps_original_bytes_text_or_base64():
    for payload in (b'{"bad', b"\xff\xfe\x00binary"):
        record = DeadLetter.from_json(DeadLetter.of("events", 2, 17, payload, "why", 5).to_json())
        assert (record.topic, record.partition, record.offset) == ("events", 2, 17)
        assert record.error == "why" and record.ts == 5
        assert record.payload() == payload
    assert DeadLetter.of("t", 0, 0, b"\xff", "e").raw_encoding == "base64"


def test_read_log_keys_times_and_keeps_bad_lines(tmp_path: Path):
    log = tmp_path / "events.jsonl"
    log.write_bytes(
        b'{"user_id":"u1","ts":10}\n\n{"broken\n{"user_id":"u2","ts":30}\n{"user_id":5,"ts":true}\n'
    )
    records = list(read_log(log))
    assert [(r.line_no, r.key, r.ts) for r in records] == [
        (1, b"u1", 10),
        (3, None, None),
        (4, b"u2", 30),
        (5, None, None),
    ]
    assert [r.line_no for r in in_range(records, 10, 30)] == [1]
    assert [r.line_no for r in in_range(records, None, None)] == [1, 3, 4, 5]


def test_pacer_sleeps_in_event_time_scaled_by_speed():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(10.0, clock=lambda: now[0], sleep=sleep)
    pacer.wait(1_000)
    pacer.wait(21_000)  # 20 s of event time at 10x = 2 s
    assert slept == [2.0]
    Pacer(None, clock=lambda: now[0], sleep=sleep).wait(99_000)
    assert slept == [2.0]
