"""CSDP_* environment variables that are not settings are named at start and by `csdp config show`."""

from __future__ import annotations

import json

from click.testing import CliRunner

from server.cli import main
from server.unknown_variables import unknown_variable_warnings

REFUSED_URL = "postgresql://app@127.0.0.1:1/csdp"


def test_misspelt_setting_gets_suggestion():
    warnings = unknown_variable_warnings({"CSDP_DATABSE_URL": "x", "CSDP_DATABASE_URL": "y", "HOME": "/root"})

    assert warnings == ["CSDP_DATABSE_URL is not a setting; did you mean CSDP_DATABASE_URL?"]


def test_unrelated_name_is_called_ignored():
    assert unknown_variable_warnings({"CSDP_COLOUR": "blue"}) == ["CSDP_COLOUR is not a setting; it is ignored"]


def test_project_test_variables_not_warned():
    environ = {
        "CSDP_FUZZ_EXAMPLES": "10",
        "CSDP_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
        "CSDP_SIM_SERVER_PLUGIN": "x",
        "CSDP_SDK_PAUSE_AT": "y",
        "CSDP_VAR_DIR": "var",
    }

    assert unknown_variable_warnings(environ) == []


def test_config_show_prints_warning_on_stderr(tmp_path):
    env = {"CSDP_VAR_DIR": str(tmp_path / "var"), "CSDP_MAX_BATCH_EVENT": "50"}

    result = CliRunner().invoke(main, ["config", "show", "--json"], env=env)

    assert result.exit_code == 0, result.output
    assert "CSDP_MAX_BATCH_EVENT is not a setting; did you mean CSDP_MAX_BATCH_EVENTS?" in result.stderr
    assert json.loads(result.stdout)["CSDP_MAX_BATCH_EVENTS"]["value"] == "500"


def test_serve_warns_before_start(tmp_path):
    env = {"CSDP_VAR_DIR": str(tmp_path / "var"), "CSDP_DATABASE_URL": REFUSED_URL, "CSDP_DATABSE_URL": "sqlite:///x"}

    result = CliRunner().invoke(main, ["serve", "--port", "0"], env=env)

    assert result.exit_code == 1
    assert "WARNING: CSDP_DATABSE_URL is not a setting; did you mean CSDP_DATABASE_URL?" in result.stderr
    assert "unknown_setting_variable" in result.stdout + result.stderr
