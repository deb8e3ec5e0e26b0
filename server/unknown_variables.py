"""Find `CSDP_*` environment variables that no setting reads, such as a misspelt name."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from .settings_report import SETTING_VARIABLES

# Variables the project reads outside the server settings: test, simulator and SDK hooks.
OTHER_PROJECT_VARIABLES = frozenset(
    {
        "CSDP_FUZZ_EXAMPLES",
        "CSDP_SDK_PAUSE_AT",
        "CSDP_SDK_PAUSE_FILE",
        "CSDP_SIM_PG_BIN",
        "CSDP_SIM_SERVER_PLUGIN",
        "CSDP_TEST_POSTGRES_URL",
        "CSDP_UPDATE_SCREENSHOT",
        "CSDP_WORKER_TOKEN",
    }
)
KNOWN_VARIABLES = frozenset(SETTING_VARIABLES.values()) | OTHER_PROJECT_VARIABLES


def unknown_variable_warnings(environ: Mapping[str, str]) -> list[str]:
    """Return one warning for each `CSDP_*` variable that is not a setting, with the closest setting name."""
    warnings = []
    for name in sorted(environ):
        if not name.startswith("CSDP_") or name in KNOWN_VARIABLES:
            continue
        close = difflib.get_close_matches(name, sorted(SETTING_VARIABLES.values()), n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else "; it is ignored"
        warnings.append(f"{name} is not a setting{hint}")
    return warnings
