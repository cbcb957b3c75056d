"""NAS-Bench-201 architecture strings: parse, validate, render, and the isomorphism key."""

from __future__ import annotations

import itertools
from typing import Iterator

from distill.core.errors import DistillError

#: The five candidate operations of a NAS-Bench-201 cell edge, in the benchmark's order.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

#: Number of intermediate nodes after the input node (node 0); node ``i`` reads nodes ``0..i-1``.
NUM_NODES = 3

#: A parsed cell: for node 1..3 a tuple of ``(op, input_node)`` pairs, inputs in order 0..i-1.
Genotype = tuple[tuple[tuple[str, int], ...], ...]

_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _bad(arch: str, why: str) -> DistillError:
    return DistillError(f"malformed NAS-Bench-201 arch string {arch!r}: {why}; expected the form {_EXAMPLE}")


def parse_arch(arch: str) -> Genotype:
    """Parse and validate an arch string such as ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

    Raises:
        DistillError: naming the string and what is wrong with it.
    """
    if not isinstance(arch, str):
        raise DistillError(f"an arch string must be a str, got {type(arch).__name__}; expected the form {_EXAMPLE}")
    text = arch.strip()
    nodes = text.split("+")
    if len(nodes) != NUM_NODES:
        raise _bad(arch, f"it has {len(nodes)} '+'-separated nodes instead of {NUM_NODES}")
    genotype = []
    for i, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
            raise _bad(arch, f"node {i} {node!r} must start and end with '|'")
        edges = node[1:-1].split("|")
        if len(edges) != i:
            raise _bad(arch, f"node {i} must have {i} edges, has {len(edges)}")
        parsed = []
        for j, edge in enumerate(edges):
            op, sep, src = edge.partition("~")
            if not sep or op not in OPS:
                raise _bad(arch, f"edge {edge!r} must be op~input with op one of {', '.join(OPS)}")
            if src != str(j):
                raise _bad(arch, f"edge {edge!r} of node {i} must read node {j}")
            parsed.append((op, j))
        genotype.append(tuple(parsed))
    return tuple(genotype)


def arch_to_str(genotype: Genotype) -> str:
    """Render a genotype as the benchmark's arch string (inverse of :func:`parse_arch`)."""
    return "+".join("|" + "|".join(f"{op}~{src}" for op, src in node) + "|" for node in genotype)


def canonical_arch(arch: str) -> str:
    """The arch string in canonical spelling (validated, whitespace removed)."""
    return arch_to_str(parse_arch(arch))


def isomorphism_key(arch: str) -> str:
    """A key that is equal for cells computing the same function (NAS-Bench-201's unique string).

    Follows the benchmark's ``Structure.to_unique_str(consider_zero=True)``: skip connections
    forward their input, ``none`` (or a zero input) gives ``#``, and the inputs of a node are
    summed in sorted order, so edge order does not matter. On the 15,625 cells it gives the
    benchmark's 6,466 classes.
    """
    nodes = ["0"]
    for node in parse_arch(arch):
        terms = []
        for op, src in node:
            if op == "none" or nodes[src] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(nodes[src])
            else:
                terms.append(f"({nodes[src]})@{op}")
        nodes.append("+".join(sorted(terms)))
    return nodes[-1]


def is_disconnected(arch: str) -> bool:
    """True when no path of non-``none`` edges joins the input node to the output node."""
    reach = {0}
    for i, node in enumerate(parse_arch(arch), start=1):
        if any(op != "none" and src in reach for op, src in node):
            reach.add(i)
    return NUM_NODES not in reach


def all_archs() -> Iterator[str]:
    """All 5^6 = 15,625 arch strings (in a fixed order, not the benchmark's index order)."""
    for ops in itertools.product(OPS, repeat=6):
        it = iter(ops)
        yield arch_to_str(tuple(tuple((next(it), j) for j in range(i)) for i in range(1, NUM_NODES + 1)))


def uniform_arch(op: str) -> str:
    """The cell with ``op`` on all six edges."""
    if op not in OPS:
        raise DistillError(f"unknown NAS-Bench-201 op {op!r}; use one of {', '.join(OPS)}")
    return arch_to_str(tuple(tuple((op, j) for j in range(i)) for i in range(1, NUM_NODES + 1)))


__all__ = ["NUM_NODES", "OPS", "all_archs", "arch_to_str", "canonical_arch", "Genotype", "is_disconnected",
           "isomorphism_key", "parse_arch", "uniform_arch"]
