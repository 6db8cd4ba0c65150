"""One name -> object registry, used for verifiers and tasks.

In-tree components register with a decorator; third-party packages register
through an entry point group (e.g. `rlvr.verifiers`), loaded lazily on the
first lookup that misses. A duplicate name is an error; an unknown name raises
a KeyError that suggests the nearest registered names. Torch-free.
"""

from __future__ import annotations

import difflib
from importlib import metadata
from typing import Any, Callable


class RegistryError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; print it plainly
        return str(self.args[0])


class Registry:
    def __init__(self, kind: str, entry_point_group: str, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind  # "verifier", "task": used in error messages
        self.group = entry_point_group
        self._builtin_modules = builtin_modules  # imported on first lookup so their decorators run
        self._items: dict[str, Any] = {}
        self._entry_points: dict[str, metadata.EntryPoint] | None = None
        self._builtins_loaded = False

    def register(self, name: str) -> Callable[[Any], Any]:
        def deco(obj: Any) -> Any:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: Any) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered (by {_origin(self._items[name])})")
        self._items[name] = obj

    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        import importlib

        for mod in self._builtin_modules:
            importlib.import_module(mod)

    def _eps(self) -> dict[str, metadata.EntryPoint]:
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in metadata.entry_points(group=self.group)}
        return self._entry_points

    def get(self, name: str) -> Any:
        self._load_builtins()
        if name in self._items:
            return self._items[name]
        ep = self._eps().get(name)
        if ep is not None:
            obj = ep.load()
            # the plugin module may have registered itself via the decorator on import
            self._items.setdefault(name, obj)
            return self._items[name]
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.names())})")

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(set(self._items) | set(self._eps()))

    def __contains__(self, name: str) -> bool:
        self._load_builtins()
        return name in self._items or name in self._eps()


def _origin(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
