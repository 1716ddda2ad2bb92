"""The one reconstruction contract shared by classical and generative methods."""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import torch

from .. import schema
from ..errors import ConfigError
from ..operators.base import LinearOperator


@dataclass(frozen=True)
class ImageDomain:
    """The image domain ``(C, H, W)`` an operator will have, known before it is built (config validation).

    It carries what :meth:`Reconstructor.check` may read of an operator: ``domain_shape``,
    ``complex_domain`` and ``name``.
    """

    domain_shape: tuple[int, ...]
    complex_domain: bool = False
    name: str = "the configured images"


@dataclass(frozen=True)
class Renamed:
    """An old name of a :attr:`Reconstructor.Params` field, accepted for one version (``new = scale * old``).

    List them in the dataclass's ``renamed`` class variable and keep the old name as a field (``None`` by default,
    its doc starting with "deprecated"), so it stays a known key with its type checked; the new field defaults
    to ``None`` too and ``default`` is its value when neither name is given. :meth:`Reconstructor.parse_params`
    converts the old value with a ``DeprecationWarning`` and refuses both names at once (:func:`renamed_parameter`).
    """

    old: str
    new: str
    default: Any = None
    scale: float = 1.0
    #: how the old name relates to the new one in messages (default: the same value)
    relation: str = ""

    def given(self, params: Any) -> tuple[Any, str]:
        """``(value, name)`` as given, before conversion: for rules in ``Params.problems()`` that must name the key
        the user wrote (the value is None when neither name is given)."""
        old, new = getattr(params, self.old), getattr(params, self.new)
        return (old, self.old) if old is not None and new is None else (new, self.new)


class Reconstructor:
    """Base class of reconstruction plugins: ``x_hat = recon(y, op)``.

    Subclasses take few keyword-only constructor parameters (they are the YAML ``params`` block) and
    implement :meth:`reconstruct`. After each call, :attr:`info` holds what the method reports: e.g.
    ``iterations``, ``nfe`` (network evaluations), ``std`` (a per-pixel standard deviation map) or
    ``samples``. Tensors in ``info`` are saved by the pipeline, scalars go to the report.

    Typed parameters (optional, the built-in methods use them): declare ``Params``, a frozen dataclass whose
    fields are the YAML ``params`` (types, defaults and ``ge``/``gt``/``le``/``lt``/``doc`` metadata as in
    :mod:`genrecon.schema`, cross-field rules in its ``problems()``, old names in its ``renamed``). The base
    constructor then takes them as keywords, checks them all at once with :func:`genrecon.schema.parse` (a
    :class:`~genrecon.errors.ConfigError` lists every problem, one line each: ``<who>.<name>: ...``), keeps the
    result in :attr:`params` and sets each field as an attribute. Config validation and ``genrecon list`` read
    the same dataclass, so the YAML, the Python constructor and the docs cannot disagree.

    Example:
        >>> from dataclasses import dataclass, field
        >>> class Scaled(Reconstructor):
        ...     "x = factor A^H y."
        ...     who = "scaled"
        ...     @dataclass(frozen=True)
        ...     class Params:
        ...         factor: float = field(default=1.0, metadata={"gt": 0, "doc": "the scale"})
        ...     def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        ...         return self.factor * op.adjoint(y)
        >>> Scaled(factor=2).factor
        2.0
        >>> Scaled(factor=-1, fcator=2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        genrecon.errors.ConfigError: 2 problems in the configuration: scaled: unknown key 'fcator' (did you mean 'factor'?); scaled.factor: must be > 0, got -1.0
    """

    #: modalities the method supports; the config validator refuses others
    modalities: tuple[str, ...] = ("mri", "ct")
    #: whether one call reconstructs a batch ``(B > 1, ...)`` of independent measurements
    supports_batch: bool = True
    #: the typed parameters (a frozen dataclass), or None: the constructor's keyword parameters are the params
    Params: ClassVar[type | None] = None
    #: the name problems with the parameters start with (the registered name; default: the class name)
    who: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        self.info: dict[str, Any] = {}
        cls = type(self)
        if cls.Params is None:
            if params:
                raise TypeError(f"{cls.__name__}: unexpected parameters {', '.join(params)} (declare them as "
                                "keyword parameters of its __init__, or in a Params dataclass)")
            return
        problems: list[str] = []
        parsed = cls.parse_params(params, cls.who or cls.__name__, problems)
        if problems:
            raise ConfigError(problems)
        #: the parsed parameters (an instance of :attr:`Params`)
        self.params = parsed
        old = {r.old for r in getattr(cls.Params, "renamed", ())}
        for f in dataclasses.fields(parsed):
            if f.name not in old:
                setattr(self, f.name, getattr(parsed, f.name))

    @classmethod
    def parse_params(cls, data: Mapping[str, Any], where: str, problems: list[str]) -> Any:
        """The :attr:`Params` of ``data`` (the YAML ``params``); each problem is appended to ``problems``, located
        by ``where`` (the config path, or the method's name). Old names (``Params.renamed``) are converted with a
        ``DeprecationWarning``. Config validation and the constructor both call this (one mechanism)."""
        params = schema.parse(cls.Params, dict(data), where, problems)
        renamed = getattr(cls.Params, "renamed", ())
        if params is None or not renamed:
            return params
        who = cls.who or cls.__name__
        changes = {}
        for r in renamed:
            found: list[str] = []
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DeprecationWarning)
                value, _ = renamed_parameter(who, r.new, getattr(params, r.new), r.old, getattr(params, r.old),
                                             r.default, found, scale=r.scale, relation=r.relation)
            for w in caught:  # said where the user's code builds the method, as a warning from its own constructor
                warnings.warn(w.message, w.category, stacklevel=_outside_this_package())
            problems.extend(f"{where}: {p.removeprefix(who + ': ')}" if where else p for p in found)
            changes[r.new] = value
        return dataclasses.replace(params, **changes)

    def __call__(
        self,
        y: torch.Tensor,
        op: LinearOperator,
        *,
        x0: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        callback: Callable[[int, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """Reconstruct ``x`` of shape ``(B, *op.domain_shape)`` from ``y`` of shape ``(B, *op.range_shape)``.

        ``callback(step, estimate)``, if given, receives image-space estimates ``(B', *op.domain_shape)`` in the
        domain's dtype (every method follows this contract; :func:`genrecon.testing.check_reconstructor`).
        """
        if not self.supports_batch and y.shape[0] != 1:
            from ..errors import ShapeError

            raise ShapeError(f"{type(self).__name__}: reconstructs one measurement per call, got a batch of "
                             f"{y.shape[0]}")
        self.info = {}
        return self.reconstruct(y, op, x0=x0, generator=generator, callback=callback)

    def check(self, op: LinearOperator | ImageDomain) -> None:
        """Raise a one-line :class:`~genrecon.errors.GenreconError` when this method cannot reconstruct
        images of ``op``'s domain (e.g. a prior trained at another size). The default accepts any.

        Config validation calls it with an :class:`ImageDomain` when ``data.size`` fixes the size, and the
        pipeline with each case's operator before any method of that case runs.
        """

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def _outside_this_package() -> int:
    """The ``stacklevel`` (for a ``warnings.warn`` in the caller) of the first frame outside
    ``genrecon/reconstructors``: the code that built the method."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(2), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here + os.sep):
        frame, level = frame.f_back, level + 1
    return level


#: the keyword arguments :meth:`Reconstructor.reconstruct` receives
CALL_KEYWORDS = ("x0", "generator", "callback")


def plugin_problems(name: str, obj: Any) -> list[str]:
    """What a class registered as reconstructor ``name`` lacks to follow the contract (empty if nothing).

    The contract: a subclass of :class:`Reconstructor` (it gives ``__call__``, ``info`` and ``check``) whose
    constructor takes keyword parameters only (the YAML ``params``) and which implements
    ``reconstruct(y, op, *, x0=None, generator=None, callback=None) -> x``. Checked when the class is
    registered, built-in or from an entry point, so a wrong plugin fails with this message, not mid-run.
    A class may instead declare its parameters as a ``Params`` dataclass (:class:`Reconstructor`).
    """
    fix = "see the README section 'Adding a method (plugins)' for a complete minimal plugin"
    if not inspect.isclass(obj):
        return [f"it is a {type(obj).__name__}, not a class; {fix}"]
    problems = []
    if not issubclass(obj, Reconstructor):
        problems.append("it must subclass genrecon.reconstructors.Reconstructor "
                        "(which provides __call__, info and check)")
    method = getattr(obj, "reconstruct", None)
    if method is None or method is Reconstructor.reconstruct:
        problems.append("it must implement reconstruct(y, op, *, x0=None, generator=None, callback=None)")
    else:
        params = inspect.signature(method).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        missing = [k for k in CALL_KEYWORDS if k not in params and not takes_kwargs]
        if missing:
            problems.append(f"its reconstruct() must accept the keywords {', '.join(CALL_KEYWORDS)} "
                            f"(missing: {', '.join(missing)})")
    declared = getattr(obj, "Params", None)
    if declared is not None and not (inspect.isclass(declared) and dataclasses.is_dataclass(declared)):
        problems.append(f"its Params must be a dataclass (the typed YAML params), got {declared!r}")
    init = inspect.signature(obj.__init__).parameters
    positional = [k for k, p in list(init.items())[1:] if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL)]
    if positional:
        problems.append(f"its constructor must take keyword parameters (they are the YAML params), not "
                        f"positional-only ones: {', '.join(positional)}")
    return [*problems, fix] if problems else []


def renamed_parameter(who: str, new: str, value: Any, old: str, old_value: Any, default: Any,
                      problems: list[str], *, scale: float = 1.0, relation: str = "") -> tuple[Any, str]:
    """The value of parameter ``new``, also accepted under its old name ``old`` for one version.

    The old value is converted (``old_value * scale``) and a ``DeprecationWarning`` names the key to write
    (validation collects it and the CLI prints it); giving both names appends a problem.

    Args:
        who: the reconstructor, for messages.
        new, value: the parameter's name and given value (None: not given).
        old, old_value: its old name and given value (None: not given).
        default: the value when neither is given.
        problems: where a problem is appended.
        scale: ``new = scale * old`` (``latent_inversion``'s ``hybrid_weight`` is twice ``tv_weight``).
        relation: how the old name relates to the new one in messages (default: the same value).

    Returns:
        ``(value, the name it was given under)`` (for messages about its value).
    """
    if old_value is None:
        return (default if value is None else value), new
    rel = relation or new
    if value is not None:
        problems.append(f"{who}: {old} is the old name of {rel}: give {new} only")
        return value, new
    if scale != 1.0:
        if not isinstance(old_value, (int, float)) or isinstance(old_value, bool):
            return old_value, old  # its type is reported by the caller's checks
        converted = old_value * scale
        factor = f"/ {1 / scale:g}" if scale < 1 else f"x {scale:g}"
        shown = f"{converted!r} ({old} {factor}), the same objective on fista_tv's scale"
    else:
        converted, shown = old_value, repr(old_value)
    warnings.warn(f"{who}: {old} is deprecated and goes in the next version: write {new}: {shown}",
                  DeprecationWarning, stacklevel=3)
    return converted, old
