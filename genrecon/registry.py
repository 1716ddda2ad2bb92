"""Named plugin registries.

Each kind of plugin (loader, mask, operator, reconstructor, ...) has one :class:`Registry`. Built-in
plugins register themselves with a decorator when their module is imported; third-party packages add
theirs through the entry-point group of the registry (``[project.entry-points."genrecon.reconstructors"]``).

Example:
    >>> from genrecon.registry import Registry
    >>> shapes = Registry("shape")
    >>> @shapes.register("square")
    ... class Square:
    ...     "A square."
    ...     def __init__(self, *, side: float = 1.0):
    ...         self.side = side
    >>> shapes.build("square", {"side": 2.0}).side
    2.0
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import typing
import warnings
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable

from .errors import ConfigError, RegistryError, did_you_mean
from .schema import coerce, describe, parse

__all__ = ["Registry", "did_you_mean", "LOADERS", "MASKS", "OPERATORS", "RECONSTRUCTORS"]


class Registry:
    """A name -> plugin mapping with suggestions, parameter checks and entry-point discovery.

    Args:
        kind: what the plugins are ("reconstructor"), used in messages.
        group: entry-point group that third-party plugins register under.
        modules: modules imported on first use, whose import registers the built-in plugins.
    """

    def __init__(self, kind: str, group: str | None = None, modules: Iterable[str] = ()):
        self.kind = kind
        self.group = group
        self._modules = list(modules)
        self._items: dict[str, Any] = {}
        self._loaded = False
        #: ``contract(name, obj) -> list[str]``: what ``obj`` lacks to be a plugin of this kind (set by the
        #: package that defines the kind's base class; every registration is checked against it)
        self.contract: Callable[[str, Any], list[str]] | None = None

    # -- registration ---------------------------------------------------------------------------
    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator registering a class or function under ``name``; a duplicate name fails."""

        def decorator(obj: Any) -> Any:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: Any) -> None:
        if name in self._items and self._items[name] is not obj:
            raise RegistryError(f"{self.kind} '{name}' is registered twice ({self._items[name]!r} and {obj!r})")
        problems = self.contract(name, obj) if self.contract is not None else []
        if problems:
            raise RegistryError(f"{self.kind} plugin '{name}' ({getattr(obj, '__module__', '?')}."
                                f"{getattr(obj, '__qualname__', obj)!s}) does not follow the plugin contract: "
                                + "; ".join(problems))
        self._items[name] = obj

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._modules:
            importlib.import_module(module)
        if self.group:
            for ep in entry_points(group=self.group):
                if ep.name in self._items:
                    continue
                try:
                    obj = ep.load()
                except Exception as exc:  # a broken third-party plugin must not break genrecon
                    raise RegistryError(
                        f"{self.kind} plugin '{ep.name}' from entry point '{ep.value}' failed to load: {exc}"
                    ) from exc
                self.add(ep.name, obj)

    # -- lookup -----------------------------------------------------------------------------------
    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def get(self, name: str) -> Any:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self._items)}; "
                f"choose one of: {', '.join(sorted(self._items))}"
            ) from None

    def doc(self, name: str) -> str:
        """First line of the plugin's docstring, as plain text (reST ````code```` and ``:role:`x``` markup
        become ```code``` and ``x``)."""
        text = inspect.getdoc(self.get(name)) or ""
        first = text.strip().splitlines()[0] if text.strip() else ""
        first = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", first)
        return first.replace("``", "`")

    # -- parameters -------------------------------------------------------------------------------
    # A plugin class may declare its parameters as ``Params``, a dataclass (genrecon.schema's field metadata); they
    # are then read, checked and listed from it (``parse_params(data, where, problems)`` on the class, if it has
    # one, else genrecon.schema.parse). Otherwise they are the keyword parameters of its constructor.
    def params_class(self, name: str) -> type | None:
        """The plugin's ``Params`` dataclass, or None (its constructor's keywords are its parameters)."""
        obj = self.get(name)
        declared = getattr(obj, "Params", None) if inspect.isclass(obj) else None
        return declared if inspect.isclass(declared) and dataclasses.is_dataclass(declared) else None

    def describe(self, name: str) -> list[tuple[str, str, str, str]] | None:
        """``(name, type, default, doc)`` of each parameter when the plugin declares ``Params``, else None."""
        declared = self.params_class(name)
        return describe(declared) if declared is not None else None

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """Keyword parameters the plugin's constructor (or function) accepts."""
        obj = self.get(name)
        declared = self.params_class(name)
        if declared is not None:
            hints = typing.get_type_hints(declared)
            out = {}
            for f in dataclasses.fields(declared):
                if not f.init:
                    continue
                default = (f.default if f.default is not dataclasses.MISSING
                           else f.default_factory() if f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
                           else inspect.Parameter.empty)
                out[f.name] = inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                                annotation=hints[f.name])
            return out
        target = obj.__init__ if inspect.isclass(obj) else obj
        params = inspect.signature(target).parameters
        return {
            k: p
            for k, p in params.items()
            if k != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }

    def check_params(self, name: str, params: dict[str, Any], where: str = "params") -> list[str]:
        """Problems with ``params`` for plugin ``name``: unknown or missing parameters (empty if fine).

        With ``Params``: every problem its parser finds (types, ranges, cross-field rules), located by ``where``;
        old parameter names are accepted silently here (their warning comes when the plugin is built)."""
        try:
            accepted = self.parameters(name)
        except RegistryError as exc:
            return [str(exc)]
        declared = self.params_class(name)
        if declared is not None:
            problems: list[str] = []
            parse_params = getattr(self.get(name), "parse_params", None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                if callable(parse_params):
                    parse_params(dict(params), where, problems)
                else:
                    parse(declared, dict(params), where, problems)
            return problems
        problems = []
        for key in params:
            if key not in accepted:
                problems.append(
                    f"{where}: {self.kind} '{name}' has no parameter '{key}'{did_you_mean(key, accepted)}"
                    f"; it accepts: {', '.join(accepted) or 'none'}"
                )
        for key, p in accepted.items():
            if p.default is inspect.Parameter.empty and key not in params:
                problems.append(f"{where}: {self.kind} '{name}' needs parameter '{key}'")
        return problems + self.check_types(name, params, where)

    def check_types(self, name: str, params: dict[str, Any], where: str = "params") -> list[str]:
        """Problems with the values of ``params`` against the annotated parameter types (empty if fine)."""
        problems: list[str] = []
        hints = self.parameter_types(name)
        for key, value in params.items():
            if key in hints:
                coerce(hints[key], value, f"{where}.{key}", problems)
        return problems

    def parameter_types(self, name: str) -> dict[str, Any]:
        """The annotated types of the plugin's keyword parameters (empty when they cannot be resolved).

        They are checked by :func:`genrecon.schema.coerce`, the mechanism the config sections use, so a
        parameter annotated ``int`` refuses ``2.5`` and ``"ten"`` before any work starts.
        """
        obj = self.get(name)
        declared = self.params_class(name)
        target = declared if declared is not None else obj.__init__ if inspect.isclass(obj) else obj
        try:
            hints = typing.get_type_hints(target)
        except Exception:  # an annotation that cannot be evaluated here: the constructor checks its values
            return {}
        if declared is not None:
            return {f.name: hints[f.name] for f in dataclasses.fields(declared) if f.init}
        return {k: v for k, v in hints.items() if k != "return"}

    def build(self, name: str, params: dict[str, Any] | None = None, **extra: Any) -> Any:
        """Instantiate plugin ``name`` with ``params`` after checking them against its signature (a plugin with
        ``Params`` checks them itself: one :class:`~genrecon.errors.ConfigError` lists every problem)."""
        params = dict(params or {})
        if self.params_class(name) is not None:
            return self.get(name)(**params, **extra)
        problems = self.check_params(name, params)
        named = [p for p in problems if p not in self.check_types(name, params)]
        if named:  # unknown or missing parameters
            raise RegistryError("; ".join(named))
        if problems:  # values of the wrong type, or not finite
            raise ConfigError(problems)
        return self.get(name)(**params, **extra)


LOADERS = Registry("loader", "genrecon.loaders", ["genrecon.io"])
MASKS = Registry("mask", "genrecon.masks", ["genrecon.simulate.masks"])
OPERATORS = Registry("operator", "genrecon.operators", ["genrecon.operators"])
RECONSTRUCTORS = Registry("reconstructor", "genrecon.reconstructors", ["genrecon.reconstructors", "genrecon.peers"])
