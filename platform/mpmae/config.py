"""Typed configuration: dataclasses loaded from YAML with dotted ``key=value`` overrides.

A config schema is a tree of (frozen) dataclasses whose fields carry their help text
(``field(metadata=doc("…"))``). :func:`load_config` reads a YAML file, applies ``--set`` overrides
and checks every key and type before anything expensive starts: an unknown key names its
full dotted path and the closest allowed key, a wrong type names what was expected. A
dataclass may define ``validate(self)`` for cross-field rules; it runs after loading.

Supported field types: bool, int, float (ints accepted), str, ``Literal[...]``, ``X | None``,
``list[X]``, ``tuple[X, Y]``/``tuple[X, ...]``, nested dataclasses and unions of these.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from mpmae.errors import MpmaeError
from mpmae.redact import redact_data, redact_text

T = TypeVar("T")
Scalar = str | int | float | bool


class ConfigError(MpmaeError, ValueError):
    """A config key or value is wrong; ``key`` is its dotted path where known."""

    def __init__(self, message: str, key: str = "") -> None:
        self.key = key
        self.message = redact_text(message)
        super().__init__(f"{key}: {message}" if key else message)


class _BadValue(ConfigError):
    """The value has the right type but is not allowed (a union must not try other types)."""


def require(ok: bool, key: str, message: str) -> None:
    """For ``validate`` methods: raise a ConfigError on ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(message, key)


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SEED_KEY = re.compile(r"(^|\.)seed(\[\d+\])?$")


def check_name(value: str, key: str) -> None:
    """Names become folder names and MLflow experiment/run names."""
    require(NAME_PATTERN.fullmatch(value) is not None, key,
            f"use letters, digits, '_', '.' and '-' only, got {value!r}")


def cache_dir() -> Path:
    """Where embedded defaults live (synthetic data, runs, MLflow DB): ``$MPMAE_HOME``,
    else ``~/.cache/mpmae``."""
    return Path(os.environ.get("MPMAE_HOME") or Path.home() / ".cache" / "mpmae").expanduser()


def runs_dir() -> Path:
    """Where runs and sweeps go when ``storage.root`` is empty: ``<cache>/runs``."""
    return cache_dir() / "runs"


def data_dir() -> Path:
    """Where the embedded default's synthetic worlds are generated on first use:
    ``<cache>/data``."""
    return cache_dir() / "data"


def run_stamp() -> str:
    """The local time that names a run, sweep or evaluation given no name, e.g.
    ``20250131-142501``."""
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def doc(text: str) -> dict[str, str]:
    """Field metadata carrying the help line ``describe`` prints:
    ``size: str = field(default="atto", metadata=doc("Encoder size"))``."""
    return {"help": text}


def load_config(cls: type[T], path: str | os.PathLike | None, overrides: list[str]) -> T:
    """Read ``path`` (YAML; None → defaults), apply ``key=value`` overrides, check, validate."""
    data = _read_yaml(Path(path)) if path else {}
    for item in overrides:
        key, raw = _split_override(item)
        _set_dotted(data, key, _parse_value(raw, _field_type(cls, key), key))
    return from_dict(cls, data)


def override(obj: T, updates: Mapping[str, Any]) -> T:
    """A copy of ``obj`` with dotted keys replaced (``{"model.mask_ratio": 0.75}``), checked."""
    data = to_dict(obj)
    for key, value in updates.items():
        _set_dotted(data, key, value)
    return from_dict(type(obj), data)


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build ``cls`` from plain data, rejecting unknown keys and wrong types by dotted path."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping of keys, got {_show(data)}", where.rstrip("."))
    _reject_unknown(cls, data, where)
    hints = _hints(cls)
    kwargs = {
        f.name: _convert(hints[f.name], data[f.name], where + f.name)
        for f in fields(cls)
        if f.name in data
    }
    try:
        obj = cls(**kwargs)  # a class may validate itself on construction
        validate = getattr(obj, "validate", None)
        if validate is not None:
            validate()
    except ConfigError as e:
        raise ConfigError(e.message, where + e.key) from None
    return obj


def to_dict(obj: Any) -> Any:
    """Plain data (dicts, lists, scalars) for a config object; tuples become lists."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


class _Dumper(yaml.SafeDumper):
    """Sections as blocks, lists inline (``betas: [0.9, 0.95]``), as a person writes them."""


_Dumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", data, flow_style=True))


def dump_yaml(obj: Any) -> str:
    """The resolved config as YAML that :func:`load_config` reads back to an equal object,
    but for URI passwords, which are masked: a saved config is read by other people."""
    return yaml.dump(redact_data(to_dict(obj)), Dumper=_Dumper, sort_keys=False,
                     allow_unicode=True)


def flatten(obj: Any) -> dict[str, Scalar]:
    """``{"model.size": "atto", …}`` for MLflow params; lists as JSON, None as ``"null"``;
    URI passwords masked."""
    out: dict[str, Scalar] = {}
    for key, value in _walk(redact_data(to_dict(obj)), ""):
        if value is None or isinstance(value, list):
            out[key] = json.dumps(value)
        else:
            out[key] = value
    return out


def describe(cls: type) -> str:
    """Every key of ``cls`` with its type, default and help, for ``--help-config``."""
    return "\n".join(_describe_lines(cls, cls(), ""))


def _describe_lines(cls: type, defaults: Any, where: str) -> list[str]:
    lines = []
    hints = _hints(cls)
    for f in fields(cls):
        key, value, help_text = where + f.name, getattr(defaults, f.name), f.metadata.get("help")
        if is_dataclass(hints[f.name]):
            lines += [f"[{key}] {help_text or ''}".rstrip()]
            lines += _describe_lines(hints[f.name], value, key + ".")
            continue
        lines.append(f"  {key}: {_type_name(hints[f.name])} = {json.dumps(to_dict(value))}")
        if help_text:
            lines.append(f"      {help_text}")
    return lines


def _walk(data: Any, where: str):
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _walk(v, f"{where}{k}." if isinstance(v, dict) else f"{where}{k}")
    else:
        yield where, data


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping: plain YAML keeps the last
    and silently drops the first, which is never what a config's author meant."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _safe_yaml(text: str) -> Any:
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read_yaml(path: Path) -> dict:
    try:
        data = _safe_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file: give a YAML config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder: give a YAML config file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys, not {type(data).__name__}")
    return data or {}


def _split_override(item: str) -> tuple[str, str]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip() or any(c.isspace() for c in key.strip()):
        raise ConfigError(
            f"override {item!r} is not KEY=VALUE; write e.g. --set model.size=tiny "
            "or --set optim.betas=[0.9,0.95]"
        )
    return key.strip(), raw


def _parse_value(raw: str, tp: Any, key: str) -> Any:
    """YAML-parse an override, except that plain-string fields take the text verbatim
    (so ``run_name=2024-05-01`` stays a string instead of becoming a date)."""
    if tp is str or (_is_literal(tp) and all(isinstance(a, str) for a in typing.get_args(tp))):
        return raw.strip()
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"cannot parse {raw!r} as a YAML value: {problem}", key) from None
    if str in _union_args(tp) and not isinstance(value, (list, dict, type(None))):
        return raw.strip()
    return value


def _field_type(cls: type, key: str) -> Any:
    """The declared type at dotted ``key``, or None if there is none (reported later)."""
    tp: Any = cls
    for part in key.split("."):
        if not is_dataclass(tp) or part not in _hints(tp):
            return None
        tp = _hints(tp)[part]
    return tp


def _set_dotted(data: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = data
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parents[: i + 1])
            raise ConfigError(f"is {_show(child)}, not a section; cannot set {key}", where)
        node = child
    node[leaf] = value


def _reject_unknown(cls: type, data: Mapping, where: str) -> None:
    names = [f.name for f in fields(cls)]
    for key in data:
        if key in names:
            continue
        close = difflib.get_close_matches(str(key), names, n=1)
        hint = f"; did you mean '{where}{close[0]}'?" if close else ""
        scope = f"in '{where.rstrip('.')}'" if where else "at the top level"
        raise ConfigError(
            f"unknown key{hint} Allowed keys {scope}: {', '.join(names)}", f"{where}{key}"
        )


def _convert(tp: Any, value: Any, key: str) -> Any:
    if is_dataclass(tp):
        return from_dict(tp, value, key + ".")
    if _is_union(tp):
        return _convert_union(tp, value, key)
    if _is_literal(tp):
        return _convert_literal(tp, value, key)
    origin = typing.get_origin(tp)
    if origin is list:
        return [_convert(typing.get_args(tp)[0], v, f"{key}[{i}]") for i, v in
                enumerate(_sequence(value, key, tp))]
    if origin is tuple:
        return _convert_tuple(tp, value, key)
    return _convert_scalar(tp, value, key)


def _convert_scalar(tp: type, value: Any, key: str) -> Any:
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads 1e-4 (no dot) and 1.5e4 (no sign) as strings.
        with contextlib.suppress(ValueError):
            value = float(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not tp:
        raise ConfigError(f"expected {_type_name(tp)}, got {_show(value)}", key)
    if tp is float and not math.isfinite(value):
        raise _BadValue(f"must be a finite number, got {value}", key)
    if tp is int and SEED_KEY.search(key) and value < 0:
        # Seeds go to numpy's generators, which take non-negative integers only.
        raise _BadValue(f"a seed must be 0 or more, got {value}", key)
    return value


def _convert_union(tp: Any, value: Any, key: str) -> Any:
    args = _union_args(tp)
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(arg, value, key)
        except _BadValue:
            raise
        except ConfigError:
            continue
    raise ConfigError(f"expected {_type_name(tp)}, got {_show(value)}", key)


def _convert_literal(tp: Any, value: Any, key: str) -> Any:
    allowed = typing.get_args(tp)
    if any(value == a and type(value) is type(a) for a in allowed):
        return value
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    choices = ", ".join(repr(a) for a in allowed)
    raise ConfigError(f"must be one of {choices}; got {_show(value)}{hint}", key)


def _convert_tuple(tp: Any, value: Any, key: str) -> tuple:
    args = typing.get_args(tp)
    items = _sequence(value, key, tp)
    if len(args) == 2 and args[1] is Ellipsis:
        args = (args[0],) * len(items)
    if len(items) != len(args):
        raise ConfigError(f"expected {_type_name(tp)} ({len(args)} items), got {_show(value)}",
                          key)
    pairs = enumerate(zip(args, items, strict=True))
    return tuple(_convert(a, v, f"{key}[{i}]") for i, (a, v) in pairs)


def _sequence(value: Any, key: str, tp: Any) -> list | tuple:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"expected {_type_name(tp)}, got {_show(value)}", key)
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _is_literal(tp: Any) -> bool:
    return typing.get_origin(tp) is Literal


def _union_args(tp: Any) -> tuple:
    return typing.get_args(tp) if _is_union(tp) else ()


def _type_name(tp: Any) -> str:
    if _is_literal(tp):
        return "|".join(str(a) for a in typing.get_args(tp))
    if _is_union(tp):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if typing.get_origin(tp) is tuple:
        names = ["..." if a is Ellipsis else _type_name(a) for a in typing.get_args(tp)]
        return f"[{', '.join(names)}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"

