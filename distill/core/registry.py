"""One registry type for everything the toolkit looks up by name: methods, networks, NAS proxies.

A :class:`Registry` maps a name to an entry (a spec dataclass that carries the entry's metadata, or a
builder), refuses a second entry under a name already taken, and answers an unknown name with one line
that lists the known ones, as torchvision's model registry does.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from distill.core.errors import DistillError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, in registration order.

    Args:
        kind: what an entry is, for messages ("method", "network", "proxy").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name``; :class:`ValueError` if the name is taken (a programming error)."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str, wrap: Callable[[Callable], T] | None = None) -> Callable[[Callable], Callable]:
        """A decorator that registers the function it decorates (or ``wrap(function)``) as ``name``."""
        def register(fn: Callable) -> Callable:
            self.add(name, wrap(fn) if wrap is not None else fn)  # type: ignore[arg-type]
            return fn

        return register

    def remove(self, name: str) -> None:
        """Forget ``name`` (a plugin unloaded, a test's own entry); nothing happens if it is not registered."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry ``name``; :class:`DistillError` naming the known ones if there is none."""
        try:
            return self._entries[name]
        except KeyError:
            raise DistillError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}") from None

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def entries(self) -> list[T]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["Registry"]
