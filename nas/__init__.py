"""NAS-Bench-201 with distilled sets as proxies: arch strings, the cell network, ground truth, search."""

from nas.archs import OPS, canonical_arch, isomorphism_key, parse_arch
from nas.benchmark import Benchmark, load_benchmark
from nas.config import SearchConfig
from nas.network import build_network
from nas.proxies import get_proxy, list_proxies
from nas.sampling import SPACES, draw_candidates, sample_candidates

__all__ = ["OPS", "SPACES", "Benchmark", "SearchConfig", "build_network", "canonical_arch", "draw_candidates",
           "get_proxy", "isomorphism_key", "list_proxies", "load_benchmark", "parse_arch", "sample_candidates"]
