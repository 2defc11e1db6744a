"""A registry filled by the modules of one package: each module registers its entries when imported, and the
first lookup imports every module of the package (discovery, not a list, so adding an entry is adding a
module). Used by the dataset formats (``data/formats/``) and the evaluation protocols
(``evaluation/protocols/``)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """``what``: the entries' kind, for messages; ``package``: the dotted package whose modules register."""

    def __init__(self, what: str, package: str):
        self.what, self.package = what, package
        self._entries: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; another entry under a taken name is an error (two homes for one name)."""
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry (a test's made-up one)."""
        self._entries.pop(name, None)

    def entries(self) -> dict[str, T]:
        """Every entry by name, the package's modules imported first."""
        self.discover()
        return dict(self._entries)

    def discover(self) -> None:
        """Import every module of the package once (the registering module itself is already importing)."""
        if self._discovered:
            return
        self._discovered = True
        for module in pkgutil.iter_modules(importlib.import_module(self.package).__path__):
            importlib.import_module(f"{self.package}.{module.name}")
