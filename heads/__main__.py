"""``python -m heads [PATTERN ...]``: the registry as a table, with the write-up's counts checked.

Each head is built alone on fc7 features (softmax output, default hyper-parameters); the whole
model's count is ``core.PARAMS_TO_FC7`` plus the head's, so the 134M-parameter backbone is never
built here. Heads are built in a ``keras.StatelessScope`` that leaves their variables
uninitialised: the counts come from the variables' shapes, and the ConvLSTM's orthogonal
initialiser (about 10 s on a laptop CPU) never runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core import PARAMS_TO_FC7
from core.device import refuse_unsupported_backend
from core.interrupts import stopped_by_ctrl_c
from core.quiet import import_backend_quietly
from heads import get_spec, list_heads

COLUMNS = ("name", "kind", "head params", "whole model", "write-up head", "write-up whole", "match")


def count_head_params(name: str) -> int:
    """Parameters of head ``name`` with its defaults and a softmax output, without allocating.

    Ends with ``keras.backend.clear_session()``, which drops the uninitialised variables (Keras
    would otherwise initialise them on the next stateless scope): fine in this command, not in a
    library call.
    """
    import keras

    from heads import build_head_model  # loads Keras: after main() imported it quietly

    with keras.StatelessScope(initialize_variables=False):
        count = build_head_model(name).count_params()
    keras.backend.clear_session()
    return count


def registry_rows(pattern: str = "*") -> list[tuple[str, ...]]:
    """One row of :data:`COLUMNS` per head; ``match`` is ``-`` where the write-up has no count."""
    rows = []
    for name in list_heads(pattern):
        spec = get_spec(name)
        head = count_head_params(name)
        whole = PARAMS_TO_FC7 + head
        if spec.paper_head_params is None or spec.paper_total_params is None:
            paper_head = paper_whole = match = "-"
        else:
            paper_head, paper_whole = f"{spec.paper_head_params:,}", f"{spec.paper_total_params:,}"
            ok = (head, whole) == (spec.paper_head_params, spec.paper_total_params)
            match = "yes" if ok else "no"
        rows.append((name, spec.kind, f"{head:,}", f"{whole:,}", paper_head, paper_whole, match))
    return rows


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Plain-text table, names left-aligned and numbers right-aligned."""
    table = [COLUMNS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = []
    for row in table:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


@stopped_by_ctrl_c("interrupted")
def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; exit status 1 if a write-up head does not reproduce its counts."""
    title = __doc__.split("\n")[0].split(": ", 1)[1]  # argparse writes its own usage
    parser = argparse.ArgumentParser(
        prog="python -m heads", description=title[0].upper() + title[1:]
    )
    parser.add_argument(
        "pattern",
        nargs="*",
        default=["*"],
        help="shell-style filters, e.g. 'conv*' lstm30 (or joined by commas)",
    )
    args = parser.parse_args(argv)
    args.pattern = ",".join(args.pattern)
    refuse_unsupported_backend(parser)
    import_backend_quietly()  # TensorFlow's start-up lines (cuInit on a CPU machine) hidden
    rows = registry_rows(args.pattern)
    if not rows:
        print(
            f"no head matches {args.pattern!r} (a shell pattern, or several joined by commas); "
            f"available: {', '.join(list_heads())}",
            file=sys.stderr,
        )
        return 2
    print(format_table(rows))
    return 1 if any(row[-1] == "no" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
