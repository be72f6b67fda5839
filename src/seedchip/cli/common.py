"""What every command shares: the --json option and the one way JSON is printed."""

from __future__ import annotations

import json
import sys

import typer

JSON = typer.Option(False, "--json", help="print the result as one JSON object")
RAY = typer.Option(False, "--ray", help="run on a Ray cluster: --address's, or a local one (needs seedchip's ray extra)")
ADDRESS = typer.Option(None, "--address", help="with --ray: the Ray cluster's address HOST:PORT (what `ray start "
                       "--head` prints), ray://HOST:10001 or auto (default: start a local Ray)")


def emit(obj) -> None:
    """Print ``obj`` as the command's JSON result (what the API's ``to_dict()`` returns)."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")
