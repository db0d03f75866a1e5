"""The `gateway` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llm_gateway import __version__
from llm_gateway.cli import db, keys, recordings, serve, stats

COMMAND_GROUPS = [serve, recordings, stats, keys, db]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="An OpenAI-compatible LLM gateway that records and replays."
    )
    parser.add_argument("--version", action="version", version=f"llm-gateway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
