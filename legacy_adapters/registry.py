"""One way to keep plug-ins by name: the backends, the ESB products' readers and the file formats'
detectors each add themselves to a Registry when their module loads, and are found by name or
tried in order.

    BACKENDS = Registry[Registration]("backend")
    BACKENDS.add("soap", Registration(...))          # or, as a decorator: @DETECTORS.register("x12", order=10)
    BACKENDS["soap"]                                  # a name nobody added says which ones were
    for name, detect in DETECTORS: ...                # lower order first, then as added
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Items by name, kept in order (lower `order` first, then as added); adding a name again
    replaces its item."""

    def __init__(self, what: str) -> None:
        self.what = what  # what an item is, for the message when a name is missing
        self._items: dict[str, tuple[int, int, T]] = {}

    def add(self, name: str, item: T, order: int = 0) -> T:
        added = self._items[name][1] if name in self._items else len(self._items)
        self._items[name] = (order, added, item)
        return item

    def register(self, name: str, order: int = 0) -> Callable[[T], T]:
        """The decorator form of `add`."""

        def registered(item: T) -> T:
            return self.add(name, item, order)

        return registered

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name][2]
        except KeyError:
            raise KeyError(f"no {self.what} named {name!r}; there are: {', '.join(self.names())}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[tuple[str, T]]:
        for name, (_, _, item) in sorted(self._items.items(), key=lambda entry: entry[1][:2]):
            yield name, item

    def names(self) -> list[str]:
        return [name for name, _ in self]
