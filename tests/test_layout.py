"""The direction of imports: cli, web and radius -> core -> (database, Redis); read from the source with ast.

A wrong arrow fails here, whether the import sits at the top of a module or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine_neutral   # imports read from the source

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("flask", "flask_babel", "flask_limiter", "flask_sqlalchemy", "flask_wtf", "werkzeug", "jinja2",
              "click", "gunicorn")
# What each part of the house must never import (a name forbids the module and everything under it).
FORBIDDEN = {
    "portal.core": (*FRAMEWORKS, "radius", "portal.web", "portal.cli", "portal.monitor"),
    "portal.monitor": (*FRAMEWORKS, "radius", "portal.web", "portal.cli"),
    "radius": (*FRAMEWORKS, "portal.web", "portal.cli", "portal.monitor"),
    "portal.web": ("portal.cli", "radius", "click", "portal.monitor"),
    "portal.cli": ("portal.web", "flask"),
    "policies": (*FRAMEWORKS, "portal", "radius"),
}


def module_name(path: Path) -> str:
    """portal/core/db.py -> portal.core.db; a package's __init__ is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str) -> list[tuple[int, str]]:
    """Every module a source imports, anywhere in it, with its line; `from a import b` also counts a.b
    (b may be a submodule), and relative imports are resolved against `module`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level] if module else []
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def under(name: str, prefix: str) -> bool:
    """True when `name` is `prefix` or inside it."""
    return name == prefix or name.startswith(prefix + ".")


def wrong_arrows(module: str, source: str) -> list[str]:
    """The imports of `module` that point the wrong way, as 'module:line -> target'."""
    rules = [banned for part, banned in FORBIDDEN.items() if under(module, part)]
    return [f"{module}:{line} -> {target}" for line, target in imports(source, module)
            for banned in rules for b in banned if under(target, b)]


def sources() -> list[Path]:
    """Every Python module of the distribution (migrations are generated code, but checked too)."""
    return sorted(p for top in ("portal", "radius", "policies") for p in (ROOT / top).rglob("*.py"))


def test_every_import_points_the_right_way():
    checked = [p for p in sources() if any(under(module_name(p), part) for part in FORBIDDEN)]
    assert len(checked) > 60      # the walk really found the code
    bad = [arrow for p in checked for arrow in wrong_arrows(module_name(p), p.read_text(encoding="utf-8"))]
    assert bad == []


@pytest.mark.parametrize(("module", "source"), [
    ("portal.core.quota", "from flask import current_app\n"),
    ("portal.core.sites", "def f():\n    from radius.nas import NasRegistry\n"),        # hidden in a function
    ("portal.core.board", "import portal.web.extensions\n"),
    ("radius.handlers", "from portal.cli import output\n"),
    ("radius.server", "from portal import web\n"),                                     # a package by name
    ("portal.web.splash", "from portal.cli.launcher import gunicorn_command\n"),
    ("portal.web.staff.board", "from radius.coa import send\n"),
    ("portal.cli.sites", "from portal.web.extensions import db\n"),
    ("portal.core.people", "from ..web import extensions\n"),                          # relative
    ("policies.model", "from portal.core import model\n"),
    ("portal.monitor.scheduler", "from portal.web.extensions import db\n"),
    ("portal.monitor.probers", "def f():\n    import click\n"),
    ("portal.monitor.main", "from radius.nas import NasRegistry\n"),
    ("portal.core.board", "from portal.monitor.probers import Pinger\n"),
    ("portal.web.staff.board", "from portal.monitor import scheduler\n"),
])
def test_a_planted_wrong_arrow_is_caught(module, source):
    assert wrong_arrows(module, source), f"{module} importing {source!r} was not flagged"


@pytest.mark.parametrize(("module", "source"), [
    ("portal.core.quota", "from policies import evaluate\nimport redis\nfrom sqlalchemy import select\n"),
    ("radius.server", "from portal.core import counters\nfrom radius.wal import WriteAheadLog\n"),
    ("portal.web.splash", "from portal.core.arrival import parse_arrival\nfrom flask import request\n"),
    ("portal.cli.services", "from radius.crew import serve_workers\nimport click\n"),
    ("portal.cli.monitor", "from portal.monitor.main import run\n"),
    ("portal.monitor.scheduler", "from portal.core import nodestore\nimport icmplib\n"),
    ("portal.core.web_like", "import webbrowser\nfrom portal.core.webhooks import x\n"),   # prefixes are whole names
])
def test_the_right_arrows_pass(module, source):
    assert wrong_arrows(module, source) == []


def test_no_module_puts_portal_code_in_radius_or_back():
    """`git grep "from radius" portal/` shows nothing: the portal side never reaches into the daemon
    except the CLI, which starts it."""
    offenders = [f"{module_name(p)}:{line}" for p in sources() if under(module_name(p), "portal")
                 and not under(module_name(p), "portal.cli")
                 for line, target in imports(p.read_text(encoding="utf-8"), module_name(p)) if under(target, "radius")]
    assert offenders == []
