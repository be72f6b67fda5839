"""What every command shares: the --json option and the one way JSON is printed."""

from __future__ import annotations

import json
import sys

import typer

JSON = typer.Option(False, "--json", help="print the result as one JSON object")


def emit(obj) -> None:
    """Print ``obj`` as the command's JSON result (what the API's ``to_dict()`` returns)."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")
