"""The ``mmif`` command line: one subcommand per module in :mod:`mmif.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Before torch loads: idle OpenMP threads sleep instead of spin-waiting (measured 2-50x faster small ops on 2 cores
# shared with other work). Users can still set their own policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mmif.errors import InputError

__all__ = ["main", "SUBCOMMANDS"]

#: subcommand name -> (module under mmif.commands, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("prepare", "build a MONAI datalist JSON from a 2D folder or 3D cases, validating every pair"),
    "phantom": ("phantom", "write the synthetic multimodal phantom (2D slices and 3D volumes)"),
    "evaluate": ("evaluate", "fuse a datalist/folder with one or more methods and score the results"),
    "fuse": ("fuse", "fuse one pair or a whole folder of sources"),
    "bench": ("bench", "print speed figures (metrics, fusion)"),
    "pipeline": ("pipeline", "run Stage I -> Stage II -> inference -> evaluation end to end"),
}


def _load(name: str):
    module, _ = SUBCOMMANDS[name]
    try:
        return importlib.import_module(f"mmif.commands.{module}")
    except ModuleNotFoundError as e:
        if e.name == f"mmif.commands.{module}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmif", description="Multimodal medical image fusion on MONAI.")
    from mmif import __version__

    parser.add_argument("--version", action="version", version=f"mmif {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        mod = _load(name)
        if mod is None:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.configure(p)
        p.set_defaults(_main=mod.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 1
    try:
        return int(args._main(args) or 0)
    except InputError as e:
        print(f"mmif {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmif {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
