"""Command-line flags generated from a flat config dataclass: one ``--field-name`` per field,
with the field's type, default and help, plus ``--help-config``. Defaults and help live only
in the schema, so a command's ``--help`` and ``--help-config`` cannot disagree."""

from __future__ import annotations

import argparse
import json
import types
import typing
from dataclasses import Field, fields
from typing import Any, Literal, TypeVar, Union

from mpmae.config import ConfigError, describe, from_dict, to_dict

T = TypeVar("T")


def add_config_flags(parser: argparse.ArgumentParser, schema: type) -> None:
    """Add a flag per field of ``schema`` (bool, int, float, str, Literal, ``X | None``)."""
    hints = typing.get_type_hints(schema)
    for f in fields(schema):
        parser.add_argument(flag_name(f.name), dest=f.name, default=f.default,
                            help=_help(f), **_value_options(hints[f.name], f.name))
    add_help_config(parser, schema)


def add_help_config(parser: argparse.ArgumentParser, schema: type) -> None:
    """``--help-config``: print every key of ``schema`` and exit, as ``--help`` does."""
    parser.add_argument("--help-config", action=_PrintSchema, schema=schema)


def config_from_args(schema: type[T], args: argparse.Namespace) -> T:
    """The validated config the parsed flags spell; a ConfigError names the flag at fault."""
    values = {f.name: getattr(args, f.name) for f in fields(schema)}
    try:
        return from_dict(schema, values)
    except ConfigError as e:
        raise ConfigError(e.message, flag_name(e.key)) from None


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


class _PrintSchema(argparse.Action):
    """Prints the schema and exits, as ``--help`` does, so required positionals need not be
    given first."""

    def __init__(self, option_strings: list[str], dest: str, schema: type,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                         nargs=0, help="list every option with its type, default and meaning")
        self.schema = schema

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(describe(self.schema))
        parser.exit()


def _help(f: Field) -> str:
    # The default as --help-config prints it (JSON: null, true, ""); '%' would be a format.
    text = f"{f.metadata.get('help', '')} (default: {json.dumps(to_dict(f.default))})"
    return text.replace("%", "%%")


def _value_options(tp: Any, name: str) -> dict[str, Any]:
    """add_argument's type/choices for a field type; ``X | None`` takes X (None: the default)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        (tp, *rest) = [a for a in typing.get_args(tp) if a is not type(None)]
        if rest:
            raise TypeError(f"{name}: no flag for a union of several types")
    if tp is bool:  # a bare ``--flag`` means true
        return {"type": _boolean, "metavar": "{true,false}", "nargs": "?", "const": True}
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        return {"type": type(choices[0]), "choices": choices}
    if tp in (int, float, str):
        return {"type": tp}
    raise TypeError(f"{name}: no flag for type {tp}; give it a scalar type or drop it")


def _boolean(text: str) -> bool:
    # Spelled as in YAML configs and --set overrides.
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
