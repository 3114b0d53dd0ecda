"""Settings: contract defaults, environment over the CONECTA_CONFIG file, validation, the secret key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from policies import POLICY_DIR
from portal.core.settings import SettingsError, load_settings, settings_env

pytestmark = pytest.mark.engine_neutral   # settings from the environment

GOOD_KEY = "x" * 32


def test_defaults_follow_the_contract(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings({})
    assert s.data_dir == tmp_path / "instance"
    assert s.database_url == f"sqlite:///{tmp_path / 'instance' / 'conecta.db'}"
    assert s.redis_url is None
    assert s.env == "development" and not s.production
    assert (s.radius_host, s.radius_auth_port, s.radius_acct_port) == ("0.0.0.0", 1812, 1813)
    assert (s.portal_host, s.portal_port) == ("0.0.0.0", 8080)
    assert s.policy_dir == POLICY_DIR
    assert s.timezone == "America/Mexico_City" and s.tz.key == "America/Mexico_City"
    assert len(s.secret_key) >= 32


def test_environment_wins_over_the_config_file(tmp_path):
    config = tmp_path / "conecta.toml"
    config.write_text(f'data_dir = "{tmp_path / "datos"}"\nportal_port = 9000\nradius_auth_port = 11812\n'
                      'timezone = "America/Merida"\nredis_url = "redis://10.0.0.9:6379/0"\n')
    s = load_settings({"CONECTA_CONFIG": str(config), "CONECTA_PORTAL_PORT": "9100",
                       "CONECTA_REDIS_URL": "redis://127.0.0.1:6379/3"})
    assert s.portal_port == 9100                       # environment
    assert s.redis_url == "redis://127.0.0.1:6379/3"   # environment
    assert s.radius_auth_port == 11812                 # file
    assert s.timezone == "America/Merida"              # file
    assert s.data_dir == tmp_path / "datos"            # file
    assert s.database_url == f"sqlite:///{tmp_path / 'datos' / 'conecta.db'}"
    assert s.radius_acct_port == 1813                  # default


@pytest.mark.parametrize(("body", "fragment"), [
    ('portal_prot = 8080\n', "portal_prot"),
    ('[radius]\nauth_port = 1812\n', "radius"),
    ('portal_port = 8080\nportal_port = 8081\n', "conecta.toml"),   # not valid TOML
])
def test_a_bad_config_file_is_an_error(tmp_path, body, fragment):
    config = tmp_path / "conecta.toml"
    config.write_text(body)
    with pytest.raises(SettingsError, match=fragment):
        load_settings({"CONECTA_CONFIG": str(config), "CONECTA_DATA_DIR": str(tmp_path)})


def test_a_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(SettingsError, match="nowhere.toml"):
        load_settings({"CONECTA_CONFIG": str(tmp_path / "nowhere.toml"), "CONECTA_DATA_DIR": str(tmp_path)})


@pytest.mark.parametrize(("variable", "value"), [
    ("CONECTA_RADIUS_AUTH_PORT", "65536"), ("CONECTA_RADIUS_ACCT_PORT", "-1"), ("CONECTA_PORTAL_PORT", "http"),
    ("CONECTA_PORTAL_PORT", ""), ("CONECTA_TIMEZONE", "Mexico/Monterrey"), ("CONECTA_TIMEZONE", "CDMX"),
    ("CONECTA_ENV", "produccion"), ("CONECTA_ENV", "Production"), ("CONECTA_RADIUS_HOST", "radius.local"),
    ("CONECTA_DATABASE_URL", "mysql://db/conecta"),
])
def test_bad_values_are_settings_errors_naming_the_variable(tmp_path, variable, value):
    with pytest.raises(SettingsError) as info:
        load_settings({"CONECTA_DATA_DIR": str(tmp_path), variable: value})
    assert variable in str(info.value)


def test_ports_at_the_edges_are_accepted(tmp_path):
    s = load_settings({"CONECTA_DATA_DIR": str(tmp_path), "CONECTA_RADIUS_AUTH_PORT": "0",
                       "CONECTA_PORTAL_PORT": "65535"})
    assert (s.radius_auth_port, s.portal_port) == (0, 65535)


def test_production_requires_a_secret_key_of_32_characters(tmp_path):
    base = {"CONECTA_DATA_DIR": str(tmp_path / "data"), "CONECTA_ENV": "production"}
    with pytest.raises(SettingsError, match="CONECTA_SECRET_KEY"):
        load_settings(base)
    with pytest.raises(SettingsError, match="32"):
        load_settings({**base, "CONECTA_SECRET_KEY": "x" * 31})
    s = load_settings({**base, "CONECTA_SECRET_KEY": GOOD_KEY})
    assert s.production and s.secret_key == GOOD_KEY
    assert not (tmp_path / "data" / "secret_key").exists()   # nothing generated in production


def test_development_generates_the_secret_once_into_the_data_dir(tmp_path):
    data = tmp_path / "nuevo" / "instance"                      # does not exist yet
    first = load_settings({"CONECTA_DATA_DIR": str(data)})
    path = data / "secret_key"
    assert path.read_text().strip() == first.secret_key
    assert len(first.secret_key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    second = load_settings({"CONECTA_DATA_DIR": str(data)})
    assert second.secret_key == first.secret_key

    other = load_settings({"CONECTA_DATA_DIR": str(tmp_path / "otro")})
    assert other.secret_key != first.secret_key

    given = load_settings({"CONECTA_DATA_DIR": str(data), "CONECTA_SECRET_KEY": "corta"})
    assert given.secret_key == "corta"                           # development takes what it is given


def test_settings_env_reproduces_the_settings_in_a_child(tmp_path):
    s = load_settings({"CONECTA_DATA_DIR": str(tmp_path), "CONECTA_ENV": "production",
                       "CONECTA_SECRET_KEY": GOOD_KEY, "CONECTA_PORTAL_PORT": "8181",
                       "CONECTA_TIMEZONE": "America/Tijuana", "CONECTA_POLICY_DIR": str(tmp_path)})
    env = settings_env(s)
    assert "CONECTA_REDIS_URL" not in env     # unset stays unset: the child starts its own
    assert load_settings(env) == s


def test_the_policy_dir_may_be_relative(tmp_path, monkeypatch):
    (tmp_path / "mis-politicas").mkdir()
    monkeypatch.chdir(tmp_path)
    s = load_settings({"CONECTA_DATA_DIR": "datos", "CONECTA_POLICY_DIR": "mis-politicas"})
    assert s.policy_dir == Path(tmp_path / "mis-politicas")
    assert s.data_dir == tmp_path / "datos"


def test_redis_sentinel_urls_are_checked_and_taken_apart(tmp_path):
    from portal.core.redisconn import parse_sentinel_url
    base = {"CONECTA_DATA_DIR": str(tmp_path)}
    url = "redis+sentinel://:s%40cret@10.0.0.1:26379,[::1]:26380/conecta/3"
    assert load_settings({**base, "CONECTA_REDIS_URL": url}).redis_url == url
    spec = parse_sentinel_url(url)
    assert (spec.sentinels, spec.service, spec.db, spec.password) == (
        (("10.0.0.1", 26379), ("::1", 26380)), "conecta", 3, "s@cret")
    assert parse_sentinel_url("redis+sentinel://h:1/m").db == 0
    for bad, says in (("redis+sentinel://h:1", "MASTER-NAME"), ("redis+sentinel://h/m/0", "HOST:PORT"),
                      ("redis+sentinel://h:1/m/x", "MASTER-NAME"), ("http://h:1/0", "must be redis://")):
        with pytest.raises(SettingsError, match=says):
            load_settings({**base, "CONECTA_REDIS_URL": bad})
