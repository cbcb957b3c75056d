"""Arch strings: round trip, rejection of malformed strings, the isomorphism key."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from distill.core.errors import DistillError
from nas.archs import OPS, all_archs, arch_to_str, canonical_arch, is_disconnected, isomorphism_key, parse_arch
from nas.sampling import dedup_isomorphic

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
NATS_CSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "nb201" / "nats_bench_tss_200epochs.csv"


def test_round_trip_every_arch():
    archs = list(all_archs())
    assert len(archs) == 5**6 == len(set(archs))
    for arch in archs:
        assert arch_to_str(parse_arch(arch)) == arch


def test_parse_structure():
    genotype = parse_arch(BEST)
    assert [len(node) for node in genotype] == [1, 2, 3]
    assert genotype[2] == (("skip_connect", 0), ("nor_conv_3x3", 1), ("nor_conv_1x1", 2))
    assert canonical_arch("  " + BEST + "\n") == BEST


@pytest.mark.parametrize("bad", [
    "",
    "|nor_conv_3x3~0|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|",  # two nodes
    "|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # unknown op
    "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",  # wrong input node
    "|none~0|+|none~0|+|none~0|none~1|none~2|",  # too few edges
    "|none~0|+|none~0|none~1|none~2|+|none~0|none~1|none~2|",  # too many edges
    "none~0+|none~0|none~1|+|none~0|none~1|none~2|",  # missing bars
    "|none0|+|none~0|none~1|+|none~0|none~1|none~2|",  # missing ~
])
def test_malformed_rejected_with_one_line(bad):
    with pytest.raises(DistillError) as info:
        parse_arch(bad)
    message = str(info.value)
    assert "\n" not in message and "arch string" in message


def test_isomorphism_key_counts_benchmark_classes():
    assert len({isomorphism_key(a) for a in all_archs()}) == 6466


def test_isomorphism_key_ignores_edge_order_and_skips():
    a = "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|skip_connect~2|"
    # node 2 = conv3x3(x); output = x + node2 either way; node 1 feeds nothing that matters
    b = "|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|skip_connect~2|"
    assert isomorphism_key(a) == isomorphism_key(b)
    assert isomorphism_key(a) != isomorphism_key(BEST)
    assert dedup_isomorphic([a, BEST, b]) == [a, BEST]


@pytest.mark.skipif(not NATS_CSV.is_file(), reason="shared NATS table not present")
def test_isomorphism_key_matches_benchmark_unique_string():
    with NATS_CSV.open() as f:
        rows = list(csv.DictReader(f))
    assert all(isomorphism_key(r["ArchitectureString"]) == r["UniqueString"] for r in rows)


def test_disconnected():
    assert is_disconnected("|" + "none~0" + "|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert is_disconnected("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|")
    assert not is_disconnected(BEST)
    assert set(OPS) == {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"}
