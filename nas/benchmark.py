"""Ground truth for NAS-Bench-201: true test accuracy of every cell after 200 epochs on the whole set.

The bundled table (``nas/data/nb201_accuracy.csv.gz``) is a compact copy of the NATS-Bench
topology table (200-epoch test accuracies on CIFAR-10, CIFAR-100, ImageNet16-120). Users with the
official NAS-Bench-201 file can load it through ``nas_201_api`` instead (:func:`load_benchmark`
with a path); any CSV with the same columns as the shared NATS table also works.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from distill.core.errors import DistillError
from nas.archs import canonical_arch, isomorphism_key

BUNDLED_TABLE = Path(__file__).with_name("data") / "nb201_accuracy.csv.gz"

#: Our dataset names -> column of the shared NATS CSV / dataset name of nas_201_api.
_CSV_COLUMNS = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "imagenet16-120": "ImageNetTestAccuracy200Epochs",
}
_API_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "ImageNet16-120"}


@dataclass(frozen=True)
class Benchmark:
    """A table of architectures with their true test accuracy (percent) per dataset.

    Attributes:
        archs: arch strings in benchmark index order.
        accuracy: dataset name -> array of accuracies aligned with ``archs``.
        source: where the table came from (for results and error messages).
    """

    archs: tuple[str, ...]
    accuracy: Mapping[str, np.ndarray]
    source: str

    def __post_init__(self) -> None:
        for name, values in self.accuracy.items():
            if len(values) != len(self.archs):
                raise ValueError(f"{name}: {len(values)} accuracies for {len(self.archs)} archs")

    def __len__(self) -> int:
        return len(self.archs)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {arch: i for i, arch in enumerate(self.archs)}

    @functools.cached_property
    def unique_keys(self) -> tuple[str, ...]:
        """The isomorphism key of every arch (aligned with ``archs``)."""
        return tuple(isomorphism_key(a) for a in self.archs)

    @property
    def datasets(self) -> list[str]:
        return sorted(self.accuracy)

    def index_of(self, arch: str) -> int:
        """The benchmark index of ``arch`` (any valid spelling); DistillError if it is not in the table."""
        arch = canonical_arch(arch)
        if arch not in self._index:
            raise DistillError(f"architecture {arch} is not in the benchmark table {self.source}; "
                               "use a NAS-Bench-201 arch string")
        return self._index[arch]

    def accuracies(self, dataset: str = "cifar10") -> np.ndarray:
        """True test accuracies of all archs on ``dataset``."""
        if dataset not in self.accuracy:
            raise DistillError(f"the benchmark table {self.source} has no accuracies for dataset {dataset!r}; "
                               f"available: {', '.join(self.datasets)}")
        return self.accuracy[dataset]

    def true_accuracy(self, arch: str, dataset: str = "cifar10") -> float:
        """True (200-epoch, whole training set) test accuracy of ``arch`` on ``dataset``."""
        return float(self.accuracies(dataset)[self.index_of(arch)])


#: What ``--benchmark-file`` takes, as error messages name it.
ACCEPTED = ("the official NAS-Bench-201-v1_*.pth file, a NATS CSV (.csv or .csv.gz with ArchitectureString) or "
            "the bundled compact table (leave out --benchmark-file)")


def _from_rows(rows: Iterable[Mapping[str, str]], columns: Mapping[str, str], source: str) -> Benchmark:
    archs: list[str] = []
    values: dict[str, list[float]] = {name: [] for name in columns}
    for row in rows:
        archs.append(row["arch"] if "arch" in row else row["ArchitectureString"])
        for name, column in columns.items():
            values[name].append(float(row[column]))
    return Benchmark(tuple(archs), {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}, source)


def read_csv(path: str | Path) -> Benchmark:
    """A table in the shared NATS CSV layout (``ArchitectureString``, ``CIFAR10TestAccuracy200Epochs``, ...)
    or in the bundled compact layout (``index,arch,cifar10,cifar100,imagenet16-120``); ``.gz`` allowed."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", newline="") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            if "arch" in fields:
                columns = {name: name for name in _CSV_COLUMNS if name in fields}
            elif "ArchitectureString" in fields:
                columns = {name: col for name, col in _CSV_COLUMNS.items() if col in fields}
            else:
                raise DistillError(f"benchmark table {path} has neither an 'arch' nor an 'ArchitectureString' "
                                   "column; pass the NAS-Bench-201 .pth file or a NATS CSV")
            return _from_rows(reader, columns, str(path))
    except (OSError, UnicodeDecodeError, KeyError, ValueError, csv.Error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DistillError(f"cannot read benchmark table {path} ({reason}); pass {ACCEPTED}") from None


def from_api(api: Any, datasets: Sequence[str] = ("cifar10", "cifar100"), *, source: str = "nas_201_api") -> Benchmark:
    """Read the 200-epoch test accuracies (mean over the benchmark's seeds) from a ``nas_201_api`` object.

    Uses only ``len(api)``, ``api[i]`` (arch string) and ``api.get_more_info(i, dataset, hp="200",
    is_random=False)["test-accuracy"]``.
    """
    archs = tuple(api[i] for i in range(len(api)))
    accuracy = {}
    for name in datasets:
        accuracy[name] = np.asarray(
            [api.get_more_info(i, _API_DATASETS[name], hp="200", is_random=False)["test-accuracy"]
             for i in range(len(archs))], dtype=np.float64)
    return Benchmark(archs, accuracy, source)


def load_official(path: str | Path, datasets: Sequence[str] = ("cifar10", "cifar100")) -> Benchmark:
    """The official NAS-Bench-201 file (``NAS-Bench-201-v1_*.pth``) through ``nas_201_api``."""
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"benchmark file {path} does not exist; pass the path of NAS-Bench-201-v1_*.pth "
                           "or leave out --benchmark-file to use the bundled table")
    if path.suffix in (".csv", ".gz"):
        return read_csv(path)
    with path.open("rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # a torch zip, or a pickle
        raise DistillError(f"{path} is not a NAS-Bench-201 table; pass {ACCEPTED}")
    try:
        from nas_201_api import NASBench201API
    except ImportError:
        raise DistillError("reading the official NAS-Bench-201 file needs the nas-bench-201 package; "
                           "pip install nas-bench-201") from None
    try:
        api = NASBench201API(str(path), verbose=False)
    except Exception as exc:  # the API asserts and unpickles; anything here is a bad file
        raise DistillError(f"cannot read {path} with nas_201_api ({type(exc).__name__}); pass {ACCEPTED}") from None
    return from_api(api, datasets, source=str(path))


@functools.lru_cache(maxsize=4)
def load_benchmark(path: str | None = None) -> Benchmark:
    """The bundled table (``path=None``) or a user's file; loaded once per process."""
    if path is None:
        if not BUNDLED_TABLE.is_file():
            raise DistillError(f"the bundled table {BUNDLED_TABLE} is missing; reinstall the package "
                               "or pass --benchmark-file")
        return read_csv(BUNDLED_TABLE)
    return load_official(path)


def write_compact_table(nats_csv: str | Path, out: str | Path = BUNDLED_TABLE) -> int:
    """Write the bundled compact table from the shared NATS CSV; returns the file size in bytes.

    The isomorphism key is not stored: :func:`nas.archs.isomorphism_key` recomputes it (and the
    tests check it against the NATS ``UniqueString`` column).
    """
    table = read_csv(nats_csv)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    names = [n for n in _CSV_COLUMNS if n in table.accuracy]
    writer.writerow(["index", "arch", *names])
    for i, arch in enumerate(table.archs):
        writer.writerow([i, arch, *(f"{table.accuracy[n][i]:.4f}" for n in names)])
    data = gzip.compress(text.getvalue().encode(), compresslevel=9, mtime=0)
    from distill.core.io import atomic_write_bytes

    atomic_write_bytes(out, data)
    return len(data)


__all__ = ["BUNDLED_TABLE", "Benchmark", "from_api", "load_benchmark", "load_official", "read_csv",
           "write_compact_table"]


if __name__ == "__main__":  # regenerate the bundled table: python -m nas.benchmark PATH.csv
    import sys

    print(write_compact_table(sys.argv[1]))
