"""Entry point of the ``lbapp`` command."""
from __future__ import annotations

import argparse
import sys

from lbapp import __version__
from lbapp.cli import backend, check, ctpolicy, demo, draw, flows, mac, pipeline, run, status, trace
from lbapp.cli.apiclient import ApiRefused
from lbapp.config import ConfigError
from lbapp.environment import EnvironmentProblem
from lbapp.lab import LabError
from lbapp.mac import MacError

SUBCOMMANDS = (mac, check, run, status, backend, demo, flows, trace, draw, pipeline, ctpolicy)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lbapp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lbapp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MacError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (EnvironmentProblem, LabError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ApiRefused as exc:  # a command that expects no refusal (lbapp status): is it lbapp's API at all?
        print(f"error: the API at {getattr(args, 'api', '?')} answered {exc.status}: {str(exc)[:200]} "
              "(is it lbapp's?)", file=sys.stderr)
        return 1
    except OSError as exc:  # a file, a port, a program the machine does not give us
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
