"""The head registry, timm style: one decorated builder per family, presets declared beside it.

``@register_family`` records a family (its builder's keyword defaults are the family defaults),
the :class:`SearchSpace` the sweep explores for it, and each of its named presets, such as the
write-up's ``conv4096``, with the write-up's parameter counts. :func:`list_heads`,
:func:`list_families` and :func:`get_spec` are the only ways in; nothing else holds state.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

KINDS = ("frame", "sequence")


@dataclass(frozen=True)
class SearchSpace:
    """What the sweep may try for one family: a size and, optionally, categorical choices.

    ``size`` names the builder's keyword that sets the head's size (a width, a count of filters or
    units), searched as an integer in [``low``, ``high``], on a log scale unless ``log=False``.
    ``choices`` maps other builder keywords to the values the sweep picks from, in that order
    (Optuna compares the order when a study resumes). Optuna names each ``f"{family}_{param}"``.
    """

    size: str
    low: int
    high: int
    log: bool = True
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.size, str) or not self.size:
            raise ValueError(f"SearchSpace size must name a builder keyword, got {self.size!r}")
        for bound in (self.low, self.high):
            if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
                raise ValueError(f"SearchSpace bounds must be positive integers, got {bound!r}")
        if self.low > self.high:
            raise ValueError(f"SearchSpace low must not exceed high, got {self.low} > {self.high}")
        choices = {}
        for param, values in self.choices.items():
            if isinstance(values, str) or not isinstance(values, tuple | list) or not values:
                raise ValueError(
                    f"SearchSpace choices[{param!r}] must be a non-empty tuple of values, "
                    f"got {values!r}"
                )
            choices[param] = tuple(values)
        if self.size in choices:
            raise ValueError(f"SearchSpace {self.size!r} is both the size and a choice")
        object.__setattr__(self, "choices", MappingProxyType(choices))  # read-only once registered

    @property
    def params(self) -> tuple[str, ...]:
        """The builder keywords this space sets: the size, then each choice."""
        return (self.size, *self.choices)


@dataclass(frozen=True)
class HeadSpec:
    """What the sweep and the builders need to know about one registered head.

    ``kind`` says which features the head eats: ``"frame"`` a (1, 1, 4096) fc7 map, ``"sequence"``
    a (frames, 1, 1, 4096) stack. ``search`` is the family's search space, shared by its presets.
    ``paper_*`` are the write-up's counts for the softmax output and the default
    hyper-parameters; ``None`` for search families, which the write-up never built.
    """

    name: str
    family: str
    kind: str
    defaults: dict[str, Any]
    search: SearchSpace
    paper_head_params: int | None = None
    paper_total_params: int | None = None
    builder: Callable[..., Any] = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Preset:
    """A named member of a family: fixed hyper-parameters and the write-up's counts for them."""

    hparams: Mapping[str, Any]
    head_params: int | None = None
    total_params: int | None = None


class UnknownHeadError(KeyError, ValueError):
    """A head name that is not registered; both a ``KeyError`` (lookup) and a ``ValueError``."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


_REGISTRY: dict[str, HeadSpec] = {}


def register_family(
    family: str,
    *,
    kind: str,
    search: SearchSpace,
    presets: Mapping[str, Preset] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``builder`` as head family ``family`` and each preset as a head of its own.

    The builder takes the feature tensor (after the optional feature dropout) and keyword-only
    hyper-parameters with defaults, and returns the tensor that the output layer consumes.
    ``search`` is required: a family the sweep cannot search is an error here, not an omission
    noticed later. Its parameters must be the builder's keywords and every preset must lie in it
    (presets are the sweep's baselines).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(search, SearchSpace):
        raise TypeError(
            f"head family {family!r} needs search=SearchSpace(...) (the sweep's range for it), "
            f"got {search!r}"
        )

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        defaults = {
            name: param.default
            for name, param in inspect.signature(builder).parameters.items()
            if param.kind is inspect.Parameter.KEYWORD_ONLY
        }
        unknown = [param for param in search.params if param not in defaults]
        if unknown:
            raise TypeError(
                f"search space of head family {family!r} names {', '.join(unknown)}, not "
                f"keyword parameters of {builder.__name__}(); it has: {', '.join(defaults)}"
            )
        _add(HeadSpec(family, family, kind, defaults, search, builder=builder))
        for name, preset in (presets or {}).items():
            unknown = sorted(set(preset.hparams) - set(defaults))
            if unknown:
                raise TypeError(f"preset {name!r} sets {unknown}, not hparams of {family!r}")
            hparams = {**defaults, **preset.hparams}
            _check_in_space(name, hparams, search)
            _add(
                HeadSpec(
                    name,
                    family,
                    kind,
                    hparams,
                    search,
                    paper_head_params=preset.head_params,
                    paper_total_params=preset.total_params,
                    builder=builder,
                )
            )
        return builder

    return decorator


def _check_in_space(name: str, hparams: Mapping[str, Any], search: SearchSpace) -> None:
    """A preset the sweep could never draw would be a baseline outside its own search space."""
    size = hparams[search.size]
    if isinstance(size, bool) or not isinstance(size, int) or not search.low <= size <= search.high:
        raise ValueError(
            f"preset {name!r} has {search.size}={size!r}, outside its family's search range "
            f"[{search.low}, {search.high}]"
        )
    for param, values in search.choices.items():
        if hparams[param] not in values:
            raise ValueError(
                f"preset {name!r} has {param}={hparams[param]!r}, not one of its family's "
                f"search choices {values}"
            )


def _add(spec: HeadSpec) -> None:
    if spec.name in _REGISTRY:
        raise ValueError(f"head {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec


def _natural_key(name: str) -> list[Any]:
    """Sort ``conv512`` before ``conv2048``: digits compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_heads(pattern: str = "*") -> list[str]:
    """Registered head names matching the shell-style ``pattern`` (or any of several joined by
    commas: ``lstm*,dense*``), in natural order."""
    parts = [part.strip() for part in pattern.split(",")]
    found = {name for part in parts for name in fnmatch.filter(_REGISTRY, part)}
    return sorted(found, key=_natural_key)


def list_families() -> list[str]:
    """Registered family names in registration order (stable: the sweep's ``head`` choices)."""
    return [spec.name for spec in _REGISTRY.values() if spec.name == spec.family]


def matching_families(pattern: str = "*") -> list[str]:
    """Families whose family name or write-up head name matches ``pattern``, registration order;
    a ValueError naming ``--heads`` when none does."""
    matched = list_heads(pattern)
    missed = [part.strip() for part in pattern.split(",") if part.strip() and not list_heads(part)]
    if not matched or missed:  # a typo in one of several is not dropped unsaid
        which = f"{pattern!r}" if not matched else f"{pattern!r} ({', '.join(missed)})"
        raise ValueError(
            f"--heads {which} matches no head (a shell pattern, or several joined by commas: "
            f"'lstm*,dense*'); available: {', '.join(list_heads())}"
        )
    found = {_REGISTRY[name].family for name in matched}
    return [family for family in list_families() if family in found]


def get_spec(name: str) -> HeadSpec:
    """The spec of head ``name`` (a copy: changing its defaults cannot change the registry)."""
    try:
        spec = _REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise UnknownHeadError(
            f"unknown head {name!r}; available heads: {', '.join(list_heads())}"
        ) from None
    return dataclasses.replace(spec, defaults=dict(spec.defaults))


def resolve_hparams(spec: HeadSpec, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's defaults overridden by ``hparams``; an unknown name is a ``ValueError``."""
    unknown = sorted(set(hparams) - set(spec.defaults))
    if unknown:
        allowed = ", ".join(spec.defaults) or "none"
        raise ValueError(
            f"head {spec.name!r} got unknown hyper-parameter(s) {', '.join(unknown)}; "
            f"allowed: {allowed}"
        )
    return {**spec.defaults, **hparams}
