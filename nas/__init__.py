"""NAS-Bench-201 with distilled sets as proxies: arch strings, the cell network, ground truth, search."""

from nas.archs import OPS, canonical_arch, isomorphism_key, parse_arch
from nas.benchmark import Benchmark, load_benchmark
from nas.config import PROXIES, SearchConfig
from nas.network import build_network
from nas.sampling import SPACES, sample_candidates

__all__ = ["OPS", "PROXIES", "SPACES", "Benchmark", "SearchConfig", "build_network", "canonical_arch",
           "isomorphism_key", "load_benchmark", "parse_arch", "sample_candidates"]
