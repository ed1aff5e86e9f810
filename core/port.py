"""Port the original MatConvNet VGG-Face weights: check a file, list its layers, convert it.

    python -m core.port SRC.mat [--out DST.weights.h5]

prints what was matched/copied and skipped, and with ``--out`` writes a converted Keras weights
file (atomically) that loads in seconds. Bad input exits with status 2 and one line on stderr.
The reading lives in :mod:`core.backbone.matconvnet`, the loading in :mod:`core.backbone.vggface`.
"""

from __future__ import annotations

import argparse
import sys

from core.backbone.matconvnet import PortError, check_output, inspect
from core.device import refuse_unsupported_backend
from core.flags import given_path
from core.interrupts import exit_with, stopped_by_ctrl_c
from core.quiet import import_backend_quietly


@stopped_by_ctrl_c("interrupted: no converted file is written until it is whole")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.port",
        description="Check a MatConvNet VGG-Face file against the Keras VGG-Face, list what is "
        "copied and skipped, and optionally write a converted Keras weights file.",
    )
    parser.add_argument(
        "src", type=given_path, help="vgg_face.mat (robots.ox.ac.uk) or vgg-face.mat (vlfeat.org)"
    )
    parser.add_argument("--out", type=given_path, help="converted weights file, *.weights.h5")
    args = parser.parse_args(argv)
    if args.out is not None:  # converting builds the network: a backend this tool runs on
        refuse_unsupported_backend(parser)
    try:
        if args.out is not None:  # before reading a 1 GB source
            check_output(args.out)
        try:
            inspected = inspect(args.src)  # a bad file refused before Keras (and its noise) loads
        except OSError as err:  # reading it: named, not --out (probe)
            raise PortError(f"{args.src}: {err.strerror or err}") from None
        ported = inspected[0]
        if args.out is not None:
            import_backend_quietly()
            from core.backbone.vggface import convert  # Keras is needed only to convert

            convert(args.src, args.out, inspected)
    except PortError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # writing the converted file: a full disk, a folder that refuses it
        print(f"error: {args.out}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(ported.listing())
    if args.out is not None:
        print(f"wrote {args.out}")
    return 0


def run() -> None:
    """``vggface-port``, installed: :func:`main`, ended by :func:`~core.interrupts.exit_with`."""
    exit_with(main())


if __name__ == "__main__":
    run()
