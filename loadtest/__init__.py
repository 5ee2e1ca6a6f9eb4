"""The load tool: simulates an on-sale through Envoy's public listener and checks I1-I5 afterwards.

`python -m loadtest --help` for the scenario options; `python -m loadtest.bench` for the standard
scenarios measured against the database's own ceiling (pgbench).
"""

import sys
from pathlib import Path

# The generated stubs live under gen/python (as the services get them through PYTHONPATH), so
# `python -m loadtest` works from the repository without setting it.
_GENERATED = str(Path(__file__).resolve().parent.parent / "gen" / "python")
if _GENERATED not in sys.path:
    sys.path.append(_GENERATED)
