"""The head registry, timm style: one decorated builder per family, presets declared beside it.

``@register_family`` records a family (its builder's keyword defaults are the family defaults) and
each of its named presets, such as the write-up's ``conv4096``, with the write-up's parameter
counts. :func:`list_heads` and :func:`get_spec` are the only ways in; nothing else holds state.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS = ("frame", "sequence")


@dataclass(frozen=True)
class HeadSpec:
    """What the sweep and the builders need to know about one registered head.

    ``kind`` says which features the head eats: ``"frame"`` a (1, 1, 4096) fc7 map, ``"sequence"``
    a (frames, 1, 1, 4096) stack. ``paper_*`` are the write-up's counts for the softmax output and
    the default hyper-parameters; ``None`` for search families, which the write-up never built.
    """

    name: str
    family: str
    kind: str
    defaults: dict[str, Any]
    paper_head_params: int | None = None
    paper_total_params: int | None = None
    summary: str = ""
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
    family: str, *, kind: str, presets: Mapping[str, Preset] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``builder`` as head family ``family`` and each preset as a head of its own.

    The builder takes the feature tensor (after the optional feature dropout) and keyword-only
    hyper-parameters with defaults, and returns the tensor that the output layer consumes.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        defaults = {
            name: param.default
            for name, param in inspect.signature(builder).parameters.items()
            if param.kind is inspect.Parameter.KEYWORD_ONLY
        }
        summary = (inspect.getdoc(builder) or "").partition("\n")[0]
        _add(HeadSpec(family, family, kind, defaults, summary=summary, builder=builder))
        for name, preset in (presets or {}).items():
            unknown = sorted(set(preset.hparams) - set(defaults))
            if unknown:
                raise TypeError(f"preset {name!r} sets {unknown}, not hparams of {family!r}")
            _add(
                HeadSpec(
                    name,
                    family,
                    kind,
                    {**defaults, **preset.hparams},
                    paper_head_params=preset.head_params,
                    paper_total_params=preset.total_params,
                    summary=summary,
                    builder=builder,
                )
            )
        return builder

    return decorator


def _add(spec: HeadSpec) -> None:
    if spec.name in _REGISTRY:
        raise ValueError(f"head {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec


def _natural_key(name: str) -> list[Any]:
    """Sort ``conv512`` before ``conv2048``: digits compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_heads(pattern: str = "*") -> list[str]:
    """Registered head names matching the shell-style ``pattern``, in natural order."""
    return sorted(fnmatch.filter(_REGISTRY, pattern), key=_natural_key)


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
