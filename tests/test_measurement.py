"""The measuring parts on their own: histograms, windows, the CSV writer, the wire format."""

import json
import math
import random

from load.measure.collector import TIMESERIES_COLUMNS, Collector
from load.measure.histogram import Histogram
from load.measure.timeline import Timeline
from load.wire.errors import IN_FLIGHT, NOT_SENT_DISCONNECTED, PONG, PONG_TIMEOUT
from load.wire.protocol import BROADCAST, ERROR, OTHER, TargetAppCodec, TemplateCodec
from load.wire.protocol import PONG as PONG_REPLY
from locustrun import read_csv


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def test_histogram_percentiles_are_within_a_tenth_of_a_percent_of_exact():
    rng = random.Random(7)
    values = [rng.lognormvariate(2, 1.5) for _ in range(20_000)]
    hist = Histogram()
    for value in values:
        hist.record(value)
    for fraction in (0.5, 0.95, 0.99):
        assert math.isclose(
            hist.percentile(fraction), nearest_rank(values, fraction), rel_tol=0.001, abs_tol=0.001
        )
    assert hist.max_ms == round(max(values) * 1000) / 1000
    several = hist.percentiles(0.5, 0.95, 0.99, 1.0)
    assert several == [hist.percentile(f) for f in (0.5, 0.95, 0.99)] + [hist.max_ms]


def test_merged_histograms_equal_one_histogram_of_all_values():
    rng = random.Random(3)
    parts = [[rng.expovariate(0.01) for _ in range(1000)] for _ in range(4)]
    merged, whole = Histogram(), Histogram()
    for part in parts:
        piece = Histogram()
        for value in part:
            piece.record(value)
            whole.record(value)
        merged.merge(Histogram.from_wire(json.loads(json.dumps(piece.to_wire()))))
    assert (
        merged.counts == whole.counts
        and merged.total == whole.total == 4000
        and merged.max_us == whole.max_us
    )


def test_the_collector_writes_every_second_once_and_only_when_final(tmp_path):
    collector = Collector(tmp_path, start=1000.3, lag_s=3)
    worker_a, worker_b = Timeline(), Timeline()
    worker_a.ping_due("/a/", 1000.5, sent=True)
    worker_a.ping_done("/a/", 1000.5, PONG, 10, 9)
    worker_b.ping_due("/a/", 1003.1, sent=False)
    worker_b.ping_done("/a/", 1003.1, NOT_SENT_DISCONNECTED)
    worker_b.ping_due("/a/", 1003.4, sent=True)
    worker_b.ping_done("/a/", 1003.4, IN_FLIGHT)
    collector.merge(worker_a.take())
    collector.merge(worker_b.take())

    assert [r["epoch_s"] for r in collector.flush(now=1005.0)] == [1000, 1001]  # 1002 could still change
    collector.close()
    rows = read_csv(tmp_path / "timeseries.csv")
    assert tuple(rows[0]) == TIMESERIES_COLUMNS
    assert [int(r["epoch_s"]) for r in rows][:4] == [1000, 1001, 1002, 1003]
    assert rows[1]["pings"] == rows[2]["pings"] == "0"  # quiet seconds are rows of zeros, not gaps
    assert (rows[3]["pings"], rows[3]["errors"], rows[3]["in_flight"], rows[3]["p50_ms"]) == (
        "2",
        "1",
        "1",
        "",
    )
    assert collector.summary()["all"]["pings"] == 3


def test_data_for_a_second_already_written_still_counts_in_the_totals(tmp_path):
    collector = Collector(tmp_path, start=1000, lag_s=1)
    collector.flush(now=1010)
    late = Timeline()
    late.ping_due("/a/", 1002.5, sent=True)
    late.ping_done("/a/", 1002.5, PONG_TIMEOUT)
    collector.merge(late.take())
    assert collector.late_windows == 1 and collector.summary()["all"]["pong_timeout"] == 1
    collector.close()


def test_target_app_codec_reads_every_kind_of_frame():
    codec = TargetAppCodec(sleep_ms=5, payload_bytes=3)
    assert json.loads(codec.encode(9)) == {"type": "ping", "seq": 9, "sleep_ms": 5, "pad": "xxx"}
    assert codec.decode('{"type": "pong", "seq": 9}').kind == PONG_REPLY
    assert codec.decode('{"type": "broadcast", "seq": 4, "sender": "s!1"}').sender == "s!1"
    assert codec.decode('{"type": "error", "reason": "no", "seq": 9}').seq == 9
    assert codec.decode('{"type": "welcome"}').kind == OTHER
    assert codec.decode("not json").kind == ERROR
    assert BROADCAST == codec.decode('{"type": "broadcast", "seq": 1}').kind


def test_template_codec_fills_seq_and_matches_by_field_or_in_order():
    by_field = TemplateCodec('{"op": "ping", "id": {seq}}', "id")
    assert by_field.encode(12) == '{"op": "ping", "id": 12}'
    assert by_field.decode('{"id": "12"}').seq == 12
    assert by_field.decode('{"other": 1}').kind == OTHER
    assert TemplateCodec("PING {seq}").decode("PONG").seq is None  # in order: the oldest pending
