"""The Python blocks of README.md and continual/README.md run, with tiny settings, so that they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def python_blocks(readme: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / readme).read_text(), flags=re.S)


def shrink(code: str, replacements: dict[str, str]) -> str:
    """Swap the blocks' real-size settings for tiny ones; a setting no longer in the text fails loudly."""
    for old, new in replacements.items():
        assert old in code, f"the README no longer contains {old!r}; update this test"
        code = code.replace(old, new)
    return code


TINY_DISTILL = "iterations=2, batch_real=4, width=8"


def test_readme_blocks_run(cifar_tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the snippets write files into the working folder
    distill_block, continual_block = python_blocks("README.md")
    exec(shrink(distill_block, {'"path/to/cifar10"': repr(str(cifar_tree)), "iterations=2000": TINY_DISTILL,
                                "TrainConfig(epochs=300)": "TrainConfig(epochs=1, batch_size=20)",
                                "seeds=[0, 1, 2]": "seeds=[0]"}), {})
    assert (tmp_path / "two-classes.pt").is_file()
    namespace: dict = {}
    exec(continual_block, namespace)
    assert type(namespace["plugins"][0]).__name__ == "ReplayPlugin"


def test_continual_readme_blocks_run(cifar_tree, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    two_lines, example = python_blocks("continual/README.md")
    exec(two_lines, {})
    exec(shrink(example, {'"data/cifar10"': repr(str(cifar_tree)), "iterations=500": TINY_DISTILL,
                          'get_network("convnet", num_classes=10)': 'get_network("convnet", num_classes=10, width=8)'}),
         {})
    accuracies = [float(line) for line in capsys.readouterr().out.split()]
    assert len(accuracies) == 5 and all(0.0 <= a <= 1.0 for a in accuracies)
