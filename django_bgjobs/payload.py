"""JSON-only payloads: arguments and results are checked before they reach a
row, and a failure names the argument's path and its type.

Tuples are accepted and come back as lists, as JSON has no tuples.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .exceptions import InvalidPayload, PayloadTooLarge

_SCALARS = (str, int, bool, type(None))
#: ``json.dumps`` with ``separators`` builds a new encoder on every call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _check_value(value: Any, path: str) -> None:
    if isinstance(value, str):
        _check_text(value, path)
        return
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidPayload(f"{path} is {value!r}, which JSON cannot hold.")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidPayload(
                    f"{path} has a key {key!r} of type {_type_name(key)}; "
                    "JSON object keys must be str."
                )
            _check_value(item, f"{path}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]")
        return
    raise InvalidPayload(
        f"{path} is {_type_name(value)}, which is not JSON: pass ids, strings "
        "and numbers (for example a model's pk, or a datetime's isoformat())."
    )


def _check_text(value: str, path: str) -> None:
    # PostgreSQL's jsonb refuses both; SQLite would store them, so the rule
    # is the same everywhere and a job moves between databases unchanged.
    if "\x00" in value:
        raise InvalidPayload(f"{path} contains a NUL character (\\x00).")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPayload(
            f"{path} is not valid Unicode (it holds a lone surrogate)."
        ) from None


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")


def check_arguments(
    args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any], limit: int
) -> int:
    """Check that ``args`` and ``kwargs`` are JSON within ``limit`` bytes.

    Return the encoded size. Raise ``InvalidPayload`` (a ``TypeError``)
    naming the first argument that is not JSON, or ``PayloadTooLarge`` with
    the size and the limit.
    """
    encoded_args, encoded_kwargs = encode_arguments(args, kwargs, limit)
    return len(encoded_args) + len(encoded_kwargs) + 3


def encode_arguments(
    args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any], limit: int
) -> tuple[str, str]:
    """Check as ``check_arguments`` and return the compact JSON of ``args``
    and of ``kwargs``; the size is that of ``[args,kwargs]`` (ASCII, so
    characters are bytes)."""
    for index, value in enumerate(args):
        _check_value(value, f"args[{index}]")
    for name, value in kwargs.items():
        _check_value(value, f"kwargs[{name!r}]")
    encoded_args = _COMPACT.encode(args) if args else "[]"
    encoded_kwargs = _COMPACT.encode(kwargs) if kwargs else "{}"
    size = len(encoded_args) + len(encoded_kwargs) + 3
    if size > limit:
        raise PayloadTooLarge(
            f"The job's arguments encode to {size} bytes, over the limit of "
            f"{limit} bytes (BGJOBS['MAX_PAYLOAD_BYTES']): store the data "
            "elsewhere and pass its id."
        )
    return encoded_args, encoded_kwargs


def check_result(value: Any) -> None:
    """Raise ``InvalidPayload`` if a job's return value is not JSON."""
    _check_value(value, "result")


def check_progress(value: Any) -> None:
    """Raise ``InvalidPayload`` (a ``TypeError``) if a job's progress is not
    JSON, naming its type; ``ValueError`` if a number is outside 0..100."""
    _check_value(value, "progress")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and not 0 <= value <= 100:
        raise ValueError(
            f"progress {value!r} is outside 0..100: pass a percentage, or "
            'any other JSON value such as {"done": 40, "total": 90}.'
        )
