"""DataDAM and baseline dataset distillation: data, networks, DSA, methods, evaluation, artifacts.

The package has three rooms: the library (``distill.core``, and ``distill.methods`` with every method), the
job runner that every command line shares (``distill.shell``), and the distill application (``distill.run``,
``distill.job``, ``distill.plot``, ``distill.tsne``), which stands on both.
"""

from distill.core.errors import DistillError
from distill.core.synthetic import SyntheticSet
from distill.core.data import load_dataset  # noqa: E402
from distill.core.networks import get_network  # noqa: E402
from distill.methods import DistillConfig, distill  # noqa: E402
from distill.core.evaluate import TrainConfig, evaluate  # noqa: E402

__all__ = ["DistillConfig", "DistillError", "SyntheticSet", "TrainConfig", "distill", "evaluate", "get_network",
           "load_dataset"]
