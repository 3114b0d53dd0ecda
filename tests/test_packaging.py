"""The distribution: a wheel of the checkout holds what the program needs and nothing else, installs into
a venv of its own outside the checkout, and serves from a folder holding decoys (a `policies/` package
that raises ImportError, ...); so does the development install. Helpers: tests/support/services.py."""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.services import (
    assert_decoys_bite,
    build_wheel,
    copy_sources,
    install,
    installed_paths,
    make_venv,
    plant_decoys,
    serve_and_check,
    shipped,
)

pytestmark = pytest.mark.engine_neutral   # a wheel and `conecta run` on data dirs of their own (SQLite)

ROOT = Path(__file__).resolve().parent.parent
# What the program reads at run time besides Python modules; each must be in the wheel.
NEEDED = ("wsgi.py", "templates/splash.html", "templates/staff/login.html", "portal/web/static/conecta.css",
          "portal/web/static/staff.css", "policies/parque.toml", "portal/core/dictionary/dictionary",
          "portal/core/migrations/env.py", "portal/core/migrations/script.py.mako",
          "portal/translations/en/LC_MESSAGES/messages.po")


@pytest.mark.timeout(300)
def test_wheel_in_a_new_venv_serves_from_a_folder_with_decoys(tmp_path: Path):
    # A copy of the checkout's files (tracked, new, and compiled catalogs) is built, so the build
    # leaves no build/ behind in the checkout and no stale file there can slip into the wheel.
    names = copy_sources(ROOT, tmp_path / "src")
    wheel = build_wheel(tmp_path / "src", tmp_path / "dist")

    with zipfile.ZipFile(wheel) as zf:
        listed = zf.namelist()
        top_level = next(zf.read(n).decode() for n in listed if n.endswith(".dist-info/top_level.txt"))
    files = {n for n in listed if not n.split("/", 1)[0].endswith(".dist-info")}
    expected = shipped(names)
    assert sorted(expected - files) == [], "left out of the wheel: add them to package_data in setup.cfg"
    assert sorted(files - expected) == [], "in the wheel but not in the checkout's shipped folders"
    assert set(NEEDED) <= files
    assert any(n.startswith("portal/core/migrations/versions/") and n.endswith(".py") for n in files)
    assert {n for n in files if n.endswith(".mo")} == {n for n in names if n.endswith(".mo")}
    assert sorted(top_level.split()) == ["policies", "portal", "radius", "templates", "wsgi"]

    python = make_venv(tmp_path / "venv")
    install(python, str(wheel))
    workdir = plant_decoys(tmp_path / "operator")
    paths = installed_paths(python, workdir)
    site = Path(paths.pop("site-packages"))
    assert all(Path(origin).is_relative_to(site) for origin in paths.values()), paths
    assert (site / "templates" / "staff" / "login.html").is_file()     # beside site-packages/portal
    assert (site / "portal" / "web" / "static" / "conecta.css").is_file()

    assert_decoys_bite(python, workdir)
    serve_and_check(python.with_name("conecta"), workdir, tmp_path)
    shutil.rmtree(tmp_path / "venv")      # 160 MB; pytest keeps the last three runs' tmp dirs


@pytest.mark.timeout(120)
def test_development_install_serves_from_a_folder_with_decoys(tmp_path: Path):
    workdir = plant_decoys(tmp_path / "operator")
    assert_decoys_bite(Path(sys.executable), workdir)
    serve_and_check(Path(sys.executable).with_name("conecta"), workdir, tmp_path)
