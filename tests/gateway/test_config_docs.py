"""The configuration reference: generated from the settings models, current, never a secret."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import re
from pathlib import Path

import pytest
from pydantic import ConfigDict, Field, create_model

import gateway.base.config as config
from gateway.base.config import Settings, load_settings
from gateway.cli import config as describe_cli
from gateway.cli.main import build_parser, main

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
SECRET_WORDS = ("password", "secret", "pin", "key")


@functools.cache
def keys() -> list[describe_cli.Key]:
    return [k for s in describe_cli.describe() for k in s.keys]


def test_configuration_md_is_current() -> None:
    expected = describe_cli.markdown(describe_cli.describe())
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/configuration.md is out of date: run `make docs`"
    )


def test_every_key_is_listed_once_with_a_description() -> None:
    listed = [k.path for k in keys()]
    assert len(listed) == len(set(listed))
    assert {
        "hostname",
        "smtp.mta_port",
        "vault.s3.secret_key",
        "vault.retention.doc_types",
        "directory.ldap.bind_password",
        "queue.routes",
        "smime.pkcs11_pin",
    } <= set(listed)
    undocumented = [k.path for k in keys() if not k.description]
    assert not undocumented, f"give these a docstring in gateway/base/sections.py: {undocumented}"


def test_a_key_reads_as_the_loader_takes_it() -> None:
    by_path = {k.path: k for k in keys()}
    port = by_path["smtp.mta_port"]
    assert (port.type, port.default, port.env) == (
        "integer, 0 to 65535",
        "2525",
        "PLI_SMTP__MTA_PORT",
    )
    assert by_path["vault.backend"].type == 'one of "fs", "s3"'
    assert by_path["vault.retention.doc_types"].default == '{ "audit-segment" = 3650 }'
    assert by_path["imap.idle_timeout"].default == "1800"
    # Lists the loader splits on commas have a variable; tables and other lists do not.
    assert by_path["domains"].env == "PLI_DOMAINS"
    assert by_path["smtp.proxy_protocol_from"].env == "PLI_SMTP__PROXY_PROTOCOL_FROM"
    assert by_path["queue.routes"].env == ""
    assert by_path["smime.extra_roots"].env == ""


def _other_value(k: describe_cli.Key) -> tuple[str, object] | None:
    """A valid value other than the default, as the environment writes it, and as loaded."""
    if k.type == "boolean":
        value = k.default != "true"
        return str(value).lower(), value
    if k.type.startswith(("integer", "number")):
        n = int(k.default) + 1  # every bound in the models leaves room above the default
        return str(n), n
    if k.type == "string":
        return "probe.example", "probe.example"
    return None  # lists, tables, one-of choices: covered by name in the test above


def test_every_variable_listed_sets_its_key(tmp_path: Path) -> None:
    # Keys a validator ties to another one get their companion.
    needs = {
        "smtp.require_client_cert": {"PLI_SMTP__CLIENT_CA_FILE": "ca.pem"},
        "http.client_ca_file": {"PLI_HTTP__TLS": "true"},
        "vault.s3.retention_days": {"PLI_VAULT__S3__OBJECT_LOCK": "COMPLIANCE"},
        "http.oidc_issuer": {
            "PLI_HTTP__OIDC_AUDIENCE": "a",
            "PLI_HTTP__OIDC_JWKS_URL": "https://idp.example/jwks",
        },
    }
    changed = 0
    for k in keys():
        other = _other_value(k)
        if not k.env or k.path == "data_dir" or other is None:
            continue
        text, value = other
        env = {k.env: text, **needs.get(k.path, {})}
        loaded: object = load_settings(None, tmp_path, environ=env)
        for part in k.path.split("."):
            loaded = getattr(loaded, part)
        assert loaded == value, k.path
        changed += 1
    assert changed >= 80


def test_command_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "describe", "--format", "markdown"]) == 0
    assert capsys.readouterr().out == describe_cli.markdown(describe_cli.describe())
    assert main(["config", "describe"]) == 0
    out = capsys.readouterr().out
    assert "smtp.mta_port = 2525" in out and "env PLI_SMTP__MTA_PORT" in out
    assert "queue.routes = {}" in out and "file only" in out
    assert "``" not in out and "`" not in out


def test_secrets_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever the file and the environment hold, only the models' defaults are printed."""
    clean = describe_cli.markdown(describe_cli.describe())
    secret_keys = [
        k for k in keys() if any(w in k.path.rsplit(".", 1)[-1] for w in SECRET_WORDS) and k.env
    ]
    assert {"vault.s3.secret_key", "vault.pkcs11.pin", "directory.ldap.bind_password"} <= {
        k.path for k in secret_keys
    }
    tables: dict[str, list[str]] = {}
    for n, k in enumerate(secret_keys):
        monkeypatch.setenv(k.env, f"env-sentinel-{n}")
        section, _, name = k.path.rpartition(".")
        tables.setdefault(section, []).append(f'{name} = "file-sentinel-{n}"')
    cfg = tmp_path / "pli.toml"
    cfg.write_text("".join(f"[{t}]\n" + "\n".join(lines) + "\n" for t, lines in tables.items()))
    monkeypatch.setenv("PLI_CONFIG", str(cfg))
    monkeypatch.setenv("PLI_DATA_DIR", str(tmp_path))
    loaded = load_settings()  # the set-up is real: the loader does see them
    assert loaded.vault.s3.secret_key.startswith("env-sentinel-")
    for fmt in ("text", "markdown"):
        assert main(["config", "describe", "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "sentinel" not in out
    # The same reference as in a clean environment, whatever this one holds.
    assert describe_cli.markdown(describe_cli.describe()) == clean


def test_a_new_section_is_described(monkeypatch: pytest.MonkeyPatch) -> None:
    """A section another change adds to Settings (say [tuning]) needs nothing here."""
    tuning = create_model(
        "TuningSettings",
        __config__=ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True),
        stock_sqlite=(bool, Field(False, description="Use the stock driver.")),
        arena_max=(int, Field(2, ge=1, description="glibc arenas.")),
    )
    extended = create_model("Settings", __base__=Settings, tuning=(tuning, tuning()))
    monkeypatch.setattr(config, "Settings", extended)  # what load_settings validates with
    sections = {s.path: s for s in describe_cli.describe(extended)}
    found = {k.path: k for k in sections["tuning"].keys}
    assert found["tuning.stock_sqlite"].env == "PLI_TUNING__STOCK_SQLITE"
    assert found["tuning.arena_max"].type == "integer, ≥ 1"
    assert found["tuning.arena_max"].description == "glibc arenas."
    assert "## [tuning]" in describe_cli.markdown(list(sections.values()))


# --- every document names only what exists --------------------------------------------

ROOT = DOC.parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "deploy" / "README.md", *(ROOT / "docs").glob("*.md")])
NOT_KEYS = {"PLI_CONFIG", "PLI_DATA_DIR", "PLI_VAULT_KEK_HEX"}  # read by the loader itself
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")


def _code(text: str) -> list[str]:
    """Every line of a fenced block and every inline code span."""
    lines = [ln for block in FENCE.findall(text) for ln in block.splitlines()[1:-1]]
    return lines + INLINE.findall(FENCE.sub("", text))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def _source_literals() -> str:
    """The product's source, where a log event name appears as a string literal."""
    return "\n".join(
        p.read_text(encoding="utf-8")
        for pkg in ("gateway", "vault", "directory", "policies")
        for p in (ROOT / pkg).rglob("*.py")
    )


def _exists(name: str, paths: set[str], source: str) -> bool:
    """A dotted name in a document: a configuration key or section, a module, a file name,
    or a log event (a string literal of the source)."""
    return (
        name in paths
        or _is_module(name)
        or bool(re.search(r"\.(py|md|toml|txt)$", name))
        or f'"{name}"' in source
    )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_name_real_keys_and_variables(doc: Path) -> None:
    sections = {s.path for s in describe_cli.describe() if s.path}
    paths = {k.path for k in keys()} | sections
    variables = {k.env for k in keys() if k.env} | NOT_KEYS
    text = doc.read_text(encoding="utf-8")
    source = _source_literals()
    wrong = []
    for span in _code(text):
        name = re.sub(r"\s*=.*", "", span.strip()).strip("[]")
        if (
            re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", name)
            and name.split(".")[0] in sections
            and not _exists(name, paths, source)
        ):
            wrong.append(name)
    wrong += [v for v in re.findall(r"PLI_[A-Z0-9_]*[A-Z0-9]", text) if v not in variables]
    assert not wrong, f"{doc.name} names keys or variables that do not exist: {wrong}"


def _parser_options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def _leaf(words: list[str]) -> tuple[argparse.ArgumentParser | None, str, str]:
    """The parser a documented command line reaches, its path, and the wrong word if any."""
    parser, path = build_parser(words[1] if len(words) > 1 else None), "pli"
    for word in words[1:]:
        choices = _subparsers(parser)
        if not choices or word.startswith("-"):  # options are checked against this parser
            break
        if word in choices:
            parser, path = choices[word], f"{path} {word}"
            continue
        if word.isupper() or ("|" in word and all(w in choices for w in word.split("|"))):
            return None, path, ""  # a placeholder (pli COMMAND), or several subcommands at once
        return None, path, word
    return parser, path, ""


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_name_real_commands_and_options(doc: Path) -> None:
    wrong = []
    for line in _code(doc.read_text(encoding="utf-8")):
        words = line.strip().removeprefix("$ ").split()
        if len(words) < 2 or words[0] != "pli":
            continue
        parser, path, bad = _leaf(words)
        if bad:
            wrong.append(f"{path} {bad}")
        if parser is None:
            continue
        known = _parser_options(parser)
        options = re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line)
        wrong += [f"{path} {o}" for o in options if o not in known]
    assert not wrong, f"{doc.name} names commands or options that do not exist: {wrong}"


def _anchors(text: str) -> set[str]:
    # GitHub's rule: lower case, punctuation other than hyphens dropped, spaces to hyphens.
    return {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", FENCE.sub("", text), re.M)
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_between_documents_resolve(doc: Path) -> None:
    wrong = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # an outside address
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        missing = not path.exists()
        if missing or (anchor and anchor not in _anchors(path.read_text(encoding="utf-8"))):
            wrong.append(target)
    assert not wrong, f"{doc.name} links to what does not exist: {wrong}"
