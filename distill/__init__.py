"""DataDAM and baseline dataset distillation: data, networks, DSA, methods, evaluation, artifacts."""

from distill.errors import DistillError
from distill.synthetic import SyntheticSet
from distill.data import load_dataset  # noqa: E402
from distill.networks import get_network  # noqa: E402
from distill.methods import DistillConfig, distill  # noqa: E402
# The function shadows its module as an attribute of the package; ``from distill.evaluate import ...``
# still reads the module.
from distill.evaluate import TrainConfig, evaluate  # noqa: E402

__all__ = ["DistillConfig", "DistillError", "SyntheticSet", "TrainConfig", "distill", "evaluate", "get_network",
           "load_dataset"]
