"""Command-line value types, one module for every entry point (``train_agent.py``, ``python -m perception``,
``python -m bandwidth_traces``): comma lists, bounded integers, non-empty paths, HOST:PORT.

The list parsers raise ``ValueError`` with what is wrong and what was expected; ``argtype`` turns any such parser
into an argparse type, so argparse names the flag in its error. Imports the standard library only.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def parse_comma_list(text: str, convert: Callable[[str], T], what: str, example: str,
                     problem: Callable[[T], str | None]) -> list[T]:
    """``text`` split at commas, each item ``convert``-ed; a ValueError says what is wrong (an empty list or item, an
    item ``convert`` rejects, a value ``problem`` describes, a repeated value) and what was ``expected``."""
    expected = f"expected comma-separated {what}, e.g. {example}"
    items = [s.strip() for s in str(text).split(",")]
    if not any(items):
        raise ValueError(f"empty list; {expected}")
    out: list[T] = []
    for item in items:
        if not item:
            raise ValueError(f"empty item in {text!r}; {expected}")
        try:
            value = convert(item)
        except ValueError:
            raise ValueError(f"{item!r} is not a valid value; {expected}") from None
        why = problem(value)
        if why:
            raise ValueError(f"{item}: {why}; {expected}")
        if value in out:
            raise ValueError(f"{item} is repeated in {text!r}; each value counts once")
        out.append(value)
    return out


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``. Raises ValueError for an empty list or item, a non-integer, a negative
    seed or a repeated one (a repeated seed would train the same run twice and count it twice in the spread)."""
    return parse_comma_list(text, int, "integers >= 0 (training seeds)", "0,1,2",
                            lambda seed: "a seed is negative" if seed < 0 else None)


def parse_positive_list(text: str) -> list[float]:
    """``"0.25,0.5,1"`` -> ``[0.25, 0.5, 1.0]``. Raises ValueError for an empty list or item, a non-number, a
    value <= 0 or not finite, and a repeated value."""
    return sorted(parse_comma_list(text, float, "numbers > 0", "0.5,1,2",
                                   lambda v: None if math.isfinite(v) and v > 0 else "not a finite number > 0"))


def parse_names(text: str) -> list[str]:
    """``"local, cbo,,oracle"`` -> ``["local", "cbo", "oracle"]`` (empty items dropped; may be empty)."""
    return [n.strip() for n in str(text).split(",") if n.strip()]


def argtype(parse: Callable[[str], T], name: str = "list") -> Callable[[str], T]:
    """An argparse type from a parser that raises ValueError (argparse then names the flag in its error)."""
    def wrapped(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapped.__name__ = name
    return wrapped


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def positive(kind: type) -> Callable[[str], float | int]:
    """An argparse type: a number of ``kind`` (int or float) > 0 and finite."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def nonempty(kind: type = str) -> Callable[[str], object]:
    """An argparse type: a non-empty string (an empty path would silently mean the current folder)."""
    def parse(text: str):
        if not text.strip():
            raise argparse.ArgumentTypeError("empty value; expected a path")
        return kind(text)

    parse.__name__ = "path"
    return parse


def host_port(text: str) -> str:
    """An argparse type: HOST:PORT (a Ray head, a server)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 10.0.0.5:6379), got {text!r}")
    return text


def slowdown_value(text: str) -> float | str:
    """An argparse type: ``auto`` or a time dilation factor >= 1 (``live --slowdown``)."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 1):
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number >= 1 (1: real time), got {text!r}")
    return value
