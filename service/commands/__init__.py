"""Commands for people: HTTP clients of a running broker, one module per group.

`service/cli.py` registers them; each module's `register` adds its parser.
"""

from __future__ import annotations

import argparse

from service.commands import audit, key, policy, run, secret, service, token

GROUPS = (token, secret, policy, audit, service, key, run)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add every command group to the `tokenbroker` parser."""
    for group in GROUPS:
        group.register(commands)
