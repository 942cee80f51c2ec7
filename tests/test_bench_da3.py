"""bench/bench_da3.py's bookkeeping (no network, no reference): the time-cap prediction, the pairing of
ours/ref rows when some sizes were skipped or ran out of memory, the --skip syntax and the variant names."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_da3_under_test", BENCH / "bench_da3.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def test_prediction_pairs_and_skips(bench):
    rows = [{"frames": 10, "seconds": 0.1, "seconds_all": [0.1, 0.12]},
            {"frames": 50, "error": "out of memory"}]
    assert bench.predicted_seconds(rows, 10, 3) is None                       # nothing smaller measured
    assert bench.predicted_seconds(rows, 100, 3) == pytest.approx(0.12 * 100 * 4)   # quadratic, warm-up + 3
    entry = {"ours": [{"frames": 10, "seconds": 0.1, "peak_gib": 1.0}, {"frames": 50, "seconds": 0.5, "peak_gib": 2.0}],
             "ref": [{"frames": 10, "seconds": 0.2, "peak_gib": 4.0}, {"frames": 50, "error": "out of memory"}]}
    bench.summarise(entry)
    assert entry["speedup"] == [{"frames": 10, "value": 2.0}, {"frames": 50, "value": None}]
    assert entry["memory_ratio"] == [{"frames": 10, "value": 0.25}, {"frames": 50, "value": None}]
    assert bench.parse_skips("da3-large:ref:200, da3-base:ours:1") == {("da3-large", "ref", 200),
                                                                       ("da3-base", "ours", 1)}
    with pytest.raises(SystemExit, match="MODEL:IMPL:FRAMES"):
        bench.parse_skips("da3-large:200")


def test_variant_names_and_ratios(bench):
    assert bench.parse_impl("ours") == {"base": "ours", "fused": False, "chead": False, "sdpa": "cudnn"}
    assert bench.parse_impl("ref") == {"base": "ref", "fused": False, "chead": False, "sdpa": "default"}
    assert bench.parse_impl("ours-fused-chead-flash") == {"base": "ours", "fused": True, "chead": True,
                                                          "sdpa": "flash"}
    assert bench.parse_impl("ref-cudnnonly")["sdpa"] == "cudnn-only"
    for bad in ("ref-fused", "ours-foo", "theirs"):
        with pytest.raises(SystemExit):
            bench.parse_impl(bad)
    entry = {"ours": [{"frames": 10, "seconds": 0.1, "peak_gib": 1.0}],
             "ours-flash": [{"frames": 10, "seconds": 0.4, "peak_gib": 2.0}],
             "ref": [{"frames": 10, "seconds": 0.2, "peak_gib": 4.0}], "ref-flash": [{"frames": 10, "seconds": 0.3}]}
    bench.summarise(entry)
    assert entry["speedups"] == {"ours": [{"frames": 10, "value": 2.0}], "ours-flash": [{"frames": 10, "value": 0.5}]}
    assert entry["memory_ratios"]["ours-flash"] == [{"frames": 10, "value": 0.5}]
    assert entry["speedup"] == entry["speedups"]["ours"]
