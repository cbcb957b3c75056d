"""Ground truth: the bundled table, CSV reading, the nas_201_api adapter, missing-file errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from distill.core.errors import DistillError
from nas.benchmark import BUNDLED_TABLE, from_api, load_benchmark, load_official, read_csv

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_bundled_table_row_6111_is_best():
    table = load_benchmark()
    assert len(table) == 15_625
    assert table.archs[6111] == BEST
    assert round(table.true_accuracy(BEST, "cifar10"), 2) == 94.37
    assert table.index_of(BEST) == 6111
    assert int(np.argmax(table.accuracies("cifar10"))) == 6111
    assert {"cifar10", "cifar100"} <= set(table.datasets)
    assert len(set(table.unique_keys)) == 6466
    assert BUNDLED_TABLE.stat().st_size < 1_000_000


def test_unknown_dataset_and_arch_errors():
    table = load_benchmark()
    with pytest.raises(DistillError, match="no accuracies for dataset"):
        table.accuracies("svhn")
    with pytest.raises(DistillError, match="malformed"):
        table.true_accuracy("|nope|")


def test_read_nats_csv_layout(tmp_path):
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("CIFAR10TestAccuracy200Epochs,CIFAR100TestAccuracy200Epochs,ArchitectureString\n")
        f.write(f"90.5,70.25,{BEST}\n")
    table = read_csv(path)
    assert table.archs == (BEST,)
    assert table.true_accuracy(BEST, "cifar100") == 70.25
    assert load_official(path).true_accuracy(BEST) == 90.5


def test_missing_benchmark_file_is_one_line(tmp_path):
    with pytest.raises(DistillError) as info:
        load_official(tmp_path / "NAS-Bench-201-v1_1-096897.pth")
    assert "does not exist" in str(info.value) and "\n" not in str(info.value)


class FakeAPI:
    """The slice of nas_201_api.NASBench201API that the adapter uses."""

    def __init__(self, archs, acc):
        self.archs, self.acc, self.calls = archs, acc, []

    def __len__(self):
        return len(self.archs)

    def __getitem__(self, i):
        return self.archs[i]

    def get_more_info(self, index, dataset, iepoch=None, hp="12", is_random=True):
        self.calls.append((dataset, hp, is_random))
        return {"test-accuracy": self.acc[dataset][index]}


def test_official_api_adapter_reads_200_epoch_means():
    other = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    api = FakeAPI([BEST, other], {"cifar10": [94.37, 10.0], "cifar100": [73.5, 1.0]})
    table = from_api(api, ("cifar10", "cifar100"))
    assert table.true_accuracy(other, "cifar10") == 10.0
    assert table.true_accuracy(BEST, "cifar100") == 73.5
    assert set(api.calls) == {("cifar10", "200", False), ("cifar100", "200", False)}
