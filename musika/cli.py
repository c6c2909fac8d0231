"""`musika` command line: one parser per subcommand, registered from the module that implements it.

Exit codes: 0 done, 1 bad input from the user, 2 usage error, 3 a device or port was unavailable at start.
Library code raises MusikaError subclasses; only this module turns them into one-line messages.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from bridge.errors import DeviceUnavailable
from bridge.logs import configure as configure_logging
from generator.errors import MusikaError

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_DEVICE = 0, 1, 2, 3

# (module, extra needed when it cannot be imported, the commands it adds)
COMMAND_MODULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("bridge.commands.serve", "", ("serve",)),
    ("bridge.commands.generate", "", ("generate",)),
    ("bridge.commands.render", "", ("render",)),
    ("training.data.cli", "train", ("prepare",)),
    ("training.cli", "train", ("train", "export")),
    ("training.eval_cli", "train", ("eval",)),
    ("training.autoencoder_cli", "train", ("autoencoder",)),
    ("bench.cli", "", ("bench",)),
    ("bridge.commands.presets", "", ("presets",)),
    ("bridge.commands.doctor", "", ("doctor",)),
    ("bridge.commands.calibrate", "", ("calibrate",)),
)

logger = logging.getLogger("musika")
VERBOSE_HELP = ("more logging: -v INFO, -vv DEBUG (without it serve shows only notices and warnings, the other "
                "commands INFO)")


def _placeholder(subparsers: argparse._SubParsersAction, names: tuple[str, ...], extra: str, error: Exception) -> None:
    for n in names:
        p = subparsers.add_parser(n, help=f"(unavailable: {error})")

        def fail(_args: argparse.Namespace, n: str = n) -> int:
            hint = f"install the '{extra}' extra: pip install 'musika-bridge[{extra}]'" if extra else "reinstall"
            print(f"musika {n}: not available in this installation ({error}); {hint}", file=sys.stderr)
            return EXIT_USAGE

        p.set_defaults(func=fail)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musika",
        description="Musika Bridge: fast, infinite, tempo-conditioned music generation for your DAW.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help=VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module, extra, names in COMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            _placeholder(subparsers, names, extra, exc)
            continue
        mod.add_parser(subparsers)
    for sub in subparsers.choices.values():  # `musika serve -v` as well as `musika -v serve`
        sub.add_argument("-v", "--verbose", dest="sub_verbose", action="count", default=0, help=VERBOSE_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose + getattr(args, "sub_verbose", 0), getattr(args, "log_level", logging.INFO))
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except DeviceUnavailable as exc:  # includes every sink/port error raised as DeviceUnavailable
        print(f"musika {args.command}: {exc}", file=sys.stderr)
        return EXIT_DEVICE
    except MusikaError as exc:
        print(f"musika {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"musika {args.command}: interrupted", file=sys.stderr)
        return 130


def add_common_formatter(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    return parser


if __name__ == "__main__":
    sys.exit(main())
