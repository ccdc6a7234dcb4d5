"""Log event names are constants: none is written inline, none is used twice, each is used.

Operators grep and alert on event names, so a name is a promise: it lives in an
events module (``gateway/base/events.py``; ``directory/events.py`` and
``policies/events.py`` for the packages that cannot import the gateway), named
after its value (``"smtp.reject"`` is ``SMTP_REJECT``). These tests read the
product code with :mod:`ast` and fail on a logger call whose event is a string
literal (plain, f-string, concatenated or %-formatted).
"""

from __future__ import annotations

import ast
import importlib
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "directory", "vault", "policies")
EVENT_MODULES = ("gateway.base.events", "directory.events", "policies.events")
LOG_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "msg", "log"}
)
_NAME = re.compile(r"^[a-z]+\.[a-z_]+$")


def _product_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _makes_logger(node: ast.expr) -> bool:
    """``structlog.get_logger(...)``, ``logging.getLogger(...)``, or ``<logger>.bind(...)``."""
    return isinstance(node, ast.Call) and _dotted(node.func).rsplit(".", 1)[-1] in (
        "get_logger",
        "getLogger",
        "bind",
        "new",
    )


def _is_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):  # "a" + "b", "smtp.%s" % x
        return _is_literal(node.left) or _is_literal(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" and _is_literal(node.func.value)
    return False


def literal_event_calls(source: str) -> list[tuple[int, str]]:
    """(line, call) of each logger call in ``source`` whose event name is a literal.

    A logger is a name or attribute assigned from ``get_logger``/``getLogger`` (or a
    ``bind`` of one) anywhere in the module, or such a call used directly.
    """
    tree = ast.parse(source)
    loggers: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _makes_logger(node.value):
            loggers.update(_dotted(t) for t in node.targets)
        elif isinstance(node, ast.AnnAssign) and node.value and _makes_logger(node.value):
            loggers.add(_dotted(node.target))
    found = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LOG_METHODS
        ):
            continue
        receiver = node.func.value
        if not (_dotted(receiver) in loggers or _makes_logger(receiver)):
            continue
        event = (
            node.args[0]
            if node.args
            else next((k.value for k in node.keywords if k.arg == "event"), None)
        )
        if event is not None and _is_literal(event):
            found.append((node.lineno, ast.unparse(node)[:80]))
    return found


def _event_constants(module: str) -> dict[str, str]:
    mod = importlib.import_module(module)
    return {k: v for k, v in vars(mod).items() if k.isupper() and isinstance(v, str)}


_SAMPLE = """\
import logging, structlog
from gateway.base import events
log = structlog.get_logger("pli.x")
std = logging.getLogger(__name__)
class C:
    def __init__(self) -> None:
        self._log = structlog.get_logger().bind(a=1)
    def f(self, x: str) -> None:
        log.info("smtp.reject", reason=x)  # BAD
        log.warning(f"smtp.{x}")  # BAD
        self._log.error("a." + x)  # BAD
        std.debug("ingest.%s" % x)  # BAD
        log.bind(s=1).info("x.{}".format(x))  # BAD
        structlog.get_logger().info(event="x.y")  # BAD
        log.info(events.SMTP_REJECT, reason="a literal value is fine")
        parser_error = x.error("not a logger")
"""


def test_the_detector_catches_every_literal_form() -> None:
    bad = [n for n, line in enumerate(_SAMPLE.splitlines(), 1) if line.endswith("# BAD")]
    assert len(bad) == 6
    assert [line for line, _ in literal_event_calls(_SAMPLE)] == bad


def test_no_logger_call_in_product_code_names_its_event_with_a_literal() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {call}"
        for path in _product_files()
        for line, call in literal_event_calls(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "use a constant from an events module:\n" + "\n".join(offenders)


def test_event_names_are_unique_across_modules() -> None:
    owners = Counter(v for m in EVENT_MODULES for v in _event_constants(m).values())
    assert [name for name, n in owners.items() if n > 1] == []


@pytest.mark.parametrize("module", EVENT_MODULES)
def test_each_event_is_public_and_named_after_its_value(module: str) -> None:
    constants = _event_constants(module)
    assert constants, f"{module} names no event"
    exported = set(importlib.import_module(module).__all__)
    for name, value in constants.items():
        assert _NAME.match(value), f"{name} = {value!r} is not 'area.what'"
        assert name == value.upper().replace(".", "_"), f"{name} = {value!r}"
        assert name in exported, f"{name} missing from {module}.__all__"


def test_every_event_module_is_listed_here() -> None:
    found = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in _product_files()
        if p.name == "events.py"
    )
    assert found == sorted(EVENT_MODULES)


def test_every_event_constant_is_logged_somewhere() -> None:
    used = {
        node.attr
        for path in _product_files()
        if path.name != "events.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and _dotted(node.value).endswith("events")
    }
    unused = sorted(name for m in EVENT_MODULES for name in _event_constants(m) if name not in used)
    assert unused == []
