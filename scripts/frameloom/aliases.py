"""Entry point of the design documents' script paths (scripts/data_curation/..., scripts/setup/...).

Standard library only: run with an interpreter outside the project's environment
(a system ``python3`` without OpenCV or PyYAML), such a script says so in one
line instead of a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path


def alias(command: str) -> None:
    """Run ``frameloom COMMAND`` with this script's arguments, or exit 2 naming the missing environment."""
    try:
        from .cli import main
    except ModuleNotFoundError as error:
        script = Path(sys.argv[0])
        print(f"{script.name}: {error.name} is not installed for {sys.executable}: run it with the project's "
              f"environment, .venv/bin/python {script} (after bash scripts/install.sh)", file=sys.stderr)
        sys.exit(2)  # an environment error, as the CLI's exit codes say
    sys.exit(main([command, *sys.argv[1:]]))
