"""The files of the cross-domain table (``compare.py --cross --out``, and its run's artifacts):
CSV, Markdown and HTML."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.results import report

UNIT = " (fraction)"  # a figure's heading in cross_domain.csv


def write(
    table: pd.DataFrame,
    shown: pd.DataFrame,
    markdown: list[str],
    banners: list[str],
    notes: list[str],
    folder: Path,
) -> list[Path]:
    """The table's files in ``folder``: ``table`` as CSV, its figures as fractions and headed so,
    its trials as CSV, its ``markdown`` with its demonstration ``banners`` and ``notes``, and
    ``shown`` (its cells as text) as HTML; returned in that order."""
    csv = folder / "cross_domain.csv"  # a demonstration says so in a column of its own
    # its figures as MLflow logs them, 0.5 for 50 %: said in their headings (0.5 read as 0.5 %
    # beside the .md's and .html's percents: probe)
    marked = table.rename(columns={c: f"{c}{UNIT}" for c in table.select_dtypes("number")})
    marked = marked.assign(demonstration="; ".join(banners)) if banners else marked
    marked.rename_axis("head").to_csv(csv)
    table.attrs["trials"].to_csv(trials := folder / "cross_domain_trials.csv")
    md = folder / "cross_domain.md"
    md.write_text("\n\n".join([*(f"**{b}**" for b in banners), *markdown, *notes]) + "\n")
    html = report.write_html(
        folder / "cross_domain.html",
        "Cross-domain PAD: every head family on every setting",
        {
            "Held-out and paper-compatible figures": shown,
            "Trials behind the cells": table.attrs["trials"].reset_index(),
        },
        {},
        notes,
        banner="; ".join(banners) or None,
    )
    return [csv, trials, md, html]
