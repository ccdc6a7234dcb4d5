"""``pli config describe``: the configuration reference, generated from the settings models.

Every key's TOML path, type, default, environment variable and description
come from the pydantic models of ``gateway.base.config`` (descriptions are
their attribute docstrings), so the reference cannot drift from what the
loader accepts: ``docs/configuration.md`` is ``--format markdown``'s output
(``make docs``) and a test fails when it is not. A section added to
``Settings`` is described without a change here. The environment variable is
listed only when the loader itself accepts the key's default through it (a
table or most lists can only be set in the file). This command describes the
models, never a loaded configuration: no configured value, a secret least of
all, can reach its output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gateway.base.config import Settings, load_settings
from gateway.base.errors import ConfigError

__all__ = ["Key", "Section", "add_parser", "command", "describe", "markdown", "run", "text"]

_ENV_PREFIX = "PLI_"


@dataclass(frozen=True, slots=True)
class Key:
    path: str  # "smtp.mta_port"
    type: str  # "integer, 0 to 65535"
    default: str  # as written in TOML
    env: str  # "PLI_SMTP__MTA_PORT", or "" when only the file can set it
    description: str


@dataclass(frozen=True, slots=True)
class Section:
    path: str  # "" for the top level, "vault.s3"
    description: str
    keys: tuple[Key, ...]


def describe(model: type[BaseModel] = Settings) -> list[Section]:
    """Every section of ``model``, depth first, each with its own keys before sub-sections."""
    return list(_sections(model, (), model))


def _sections(
    model: type[BaseModel], path: tuple[str, ...], root: type[BaseModel]
) -> Iterator[Section]:
    keys: list[Key] = []
    subsections: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        if _is_section(field.annotation):
            subsections.append((name, field.annotation))
        else:
            keys.append(_key(root, (*path, name), field))
    yield Section(".".join(path), _clean(model.__doc__ or ""), tuple(keys))
    for name, sub in subsections:
        yield from _sections(sub, (*path, name), root)


def _is_section(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _key(root: type[BaseModel], path: tuple[str, ...], field: FieldInfo) -> Key:
    default = field.get_default(call_default_factory=True)
    env = _ENV_PREFIX + "__".join(path).upper()
    return Key(
        path=".".join(path),
        type=_type(field.annotation) + _bounds(field.metadata),
        default=_toml(default),
        env=env if _env_accepts(root, path, env, default) else "",
        description=_clean(field.description or ""),
    )


def _env_accepts(root: type[BaseModel], path: tuple[str, ...], env: str, default: Any) -> bool:
    """Ask the loader whether the key's default, written as an environment value, comes back."""
    if isinstance(default, tuple):
        value = ",".join(str(v) for v in default)
    elif isinstance(default, bool):
        value = "true" if default else "false"
    else:
        value = str(default)
    try:
        # /dev/null as the file: neither the caller's environment nor a pli.toml can leak in.
        loaded: Any = load_settings(Path(os.devnull), environ={env: value})
    except ConfigError:
        return False
    if not isinstance(loaded, root):
        return False  # a model the loader does not build (tests describing a variant)
    for part in path:
        loaded = getattr(loaded, part)
    return bool(loaded == default)


def _type(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "number"
    if annotation is str:
        return "string"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    if origin is Literal:
        return "one of " + ", ".join(_toml(a) for a in args)
    if origin in (tuple, list):
        return f"list of {_plural(_type(args[0]))}" if args else "list"
    if origin is dict and len(args) == 2:
        return f"table of {_plural(_type(args[1]))}"
    if origin in (Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _type(a) for a in args)
    return getattr(annotation, "__name__", str(annotation))


def _plural(kind: str) -> str:
    return {
        "integer": "integers",
        "number": "numbers",
        "string": "strings",
        "path": "paths",
        "boolean": "booleans",
    }.get(kind, kind)


def _bounds(metadata: list[Any]) -> str:
    low = high = ""
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            low = f"≥ {m.ge}"
        elif isinstance(m, annotated_types.Gt):
            low = f"> {m.gt}"
        elif isinstance(m, annotated_types.Le):
            high = f"≤ {m.le}"
        elif isinstance(m, annotated_types.Lt):
            high = f"< {m.lt}"
    if low.startswith("≥") and high.startswith("≤"):
        return f", {low[2:]} to {high[2:]}"
    return "".join(f", {b}" for b in (low, high) if b)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 1800 reads better than 1800.0 and loads the same
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def _clean(doc: str) -> str:
    """A docstring as paragraphs of single lines, with Markdown's single backticks."""
    paragraphs = re.split(r"\n\s*\n", textwrap.dedent(doc).strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs).replace("``", "`")


_INTRO = """\
pli reads one TOML file: `--config FILE`, else the file named by `PLI_CONFIG`,
else `DATA_DIR/pli.toml` (written by `pli init`). Every key can then be
overridden by an environment variable, `PLI_` followed by the key's path in
capitals with `__` between the parts (`PLI_SMTP__MTA_PORT=0` sets
`[smtp] mta_port`); the lists that can be set this way are comma-separated
(`PLI_DOMAINS=a.fr,b.fr`), tables and other lists only in the file. The data
directory comes from `--data-dir`, else `PLI_DATA_DIR`, else `./var`.
`PLI_VAULT_KEK_HEX` gives the vault's key-encryption key itself (hexadecimal)
instead of `vault.kek_file`. Everything is validated at start-up, and an
invalid value stops pli with the key named:

    pli: error: invalid configuration key 'smtp.mta_port' (env PLI_SMTP__MTA_PORT): \
Input should be a valid integer

Secrets (passwords, PINs, the S3 secret key) belong in the environment or in a
file named by the matching `*_file` key, never in a shared configuration file.
`deploy/pli.toml.example` is a production-shaped file."""


def text(sections: list[Section]) -> str:
    """The reference as plain text, for a terminal."""
    out = ["pli configuration reference", "", _INTRO.replace("`", ""), ""]
    for s in sections:
        out.append(f"[{s.path}]" if s.path else "(top level)")
        if s.description:
            out += _wrap(s.description, "  ")
        for k in s.keys:
            env = f"env {k.env}" if k.env else "file only"
            out.append(f"  {k.path} = {k.default}    ({k.type}; {env})")
            out += _wrap(k.description, "      ")
        out.append("")
    return "\n".join(out).replace("`", "")


def _wrap(paragraphs: str, indent: str) -> list[str]:
    lines: list[str] = []
    for p in paragraphs.split("\n\n"):
        lines += textwrap.wrap(p, 88, initial_indent=indent, subsequent_indent=indent)
    return lines


def markdown(sections: list[Section]) -> str:
    """The reference as ``docs/configuration.md`` holds it."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `pli config describe --format markdown` (`make docs`) from the "
        "models in gateway/base/sections.py and gateway/base/config.py: edit their "
        "docstrings, not this file. -->",
        "",
        _INTRO,
        "",
        "Sections: " + ", ".join(f"[{_heading(s)}](#{_anchor(s)})" for s in sections if s.keys),
    ]
    for s in sections:
        if not s.keys:
            continue
        out += ["", f"## {_heading(s)}", ""]
        if s.description:
            out += [_escape(s.description), ""]
        for k in s.keys:
            env = f"`{k.env}`" if k.env else "file only"
            out.append(f"- **`{k.path}`** · {k.type} · default `{k.default}` · {env}  ")
            out.append("  " + _escape(k.description).replace("\n\n", "\n\n  "))
    return "\n".join(out) + "\n"


def _heading(s: Section) -> str:
    return f"[{s.path}]" if s.path else "Top level"


def _anchor(s: Section) -> str:
    # GitHub's rule: lower case, punctuation dropped, spaces to hyphens.
    return re.sub(r"[^\w\- ]", "", _heading(s).lower()).replace(" ", "-")


def _escape(prose: str) -> str:
    """Keep ``<hostname>`` and the like visible: Markdown would take them for HTML."""
    parts = prose.split("`")
    for i in range(0, len(parts), 2):  # outside code spans only
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    c = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = c.add_parser(
        "describe", help="every key: TOML path, type, default, environment variable, meaning"
    )
    common(p)  # accepted like everywhere; the reference depends on no configuration
    p.add_argument(
        "--format",
        choices=["text", "markdown"],
        default="text",
        help="markdown is what docs/configuration.md holds",
    )


async def run(args: argparse.Namespace) -> int:
    sections = describe()
    print(markdown(sections) if args.format == "markdown" else text(sections), end="")
    return 0


command = run
