"""Extract the fc7 features of a dataset into the cache, or find them there.

    python experiments/extract.py [--data DIR] [--weights W] [--cache-dir D] [--frames 7]
        [--face-crop] [--protocol auto] [--fold K] [--subject-pattern RE] [--split-seed 0]
        [--batch-size 16] [--list]
    python experiments/extract.py --databases FILE (--protocol ocim... | --sources A,B --target C)

Without ``--data`` the embedded synthetic PAD set is generated under ``<cache-dir>/synthetic``
(a demonstration set, labelled as such). Without ``--weights`` the converted file at the default
location is used if there is one (see :mod:`core.features.extract`), else a random backbone, loudly.

Prints the dataset summary, the count of clips skipped while decoding (those no warning named
listed), then clips, frames, frames/s, whether the cache was reused, and the cache folder.
``--list`` extracts nothing (and loads no Keras): it prints the protocol's clips as CSV on stdout,
``clip,split,label,species,subject`` and then the dataset's own columns (e.g. phone, session,
instrument; support, light; quality) and, for a database that ships face boxes, ``face_boxes``
(each clip's box file), with the summary on stderr, so a protocol's split can be checked before
hours of extraction; a cross-domain setting's databases as one table, a ``database`` column first
(and of one setting, each clip's ``role``: train, dev, test or unused).
Bad input exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from core.features.request import FeatureOptions
from core.interrupts import stopped_by_ctrl_c, terminate_as_ctrl_c
from core.words import counted
from experiments.commands.features import os_error_line
from experiments.commands.options import (
    HelpFormatter,
    add_database_arguments,
    add_feature_arguments,
    evaluation_options,
    feature_options,
)
from experiments.commands.quiet import OneLineParser

if TYPE_CHECKING:
    from core.data.dataset import Dataset
    from experiments.config import EvaluationOptions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(
        prog="python experiments/extract.py",
        formatter_class=HelpFormatter,
        description="Extract (or reuse) the cached VGG-Face fc7 features of a dataset.",
    )
    add_feature_arguments(parser)
    add_database_arguments(parser)
    parser.add_argument(
        "--list",
        action="store_true",
        help="print the protocol's clips as CSV (clip, split, label, species, subject, the "
        "dataset's own columns; face_boxes: each clip's box file, where the database ships "
        "them) and extract nothing",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (none where stderr is no terminal): a plain line at most once a "
        "minute (job logs)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    args = parser.parse_args(argv)
    try:
        options = feature_options(args, progress=not args.no_progress)
        evaluations = evaluation_options(args, options)
        args.cross_domain, args.evaluations = evaluations[0].cross_domain, evaluations
        args.named = named_databases(evaluations, options)
    except ValueError as err:
        parser.error(str(err))
    return args


@terminate_as_ctrl_c()  # SIGTERM stops it as Ctrl-C does
@stopped_by_ctrl_c("interrupted: the cache keeps every chunk finished; the same command goes on")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from experiments.commands.quiet import (
        console_logging,
        quiet_backend,
        quiet_console,
        reader_gone,
    )

    console_logging(args.verbose)
    quiet_console(args.verbose)  # the backend only when a cache misses: a rerun loads none
    from core.backbone.matconvnet import PortError
    from core.data.clips import DataError
    from core.features import ExtractionInterrupted
    from core.features.request import read_once

    try:
        with read_once():  # a database checked, then extracted: its skips said once
            if args.cross_domain:  # every database read and checked before any is extracted
                from experiments.config import NamedData
                from experiments.trial.evaluation import check_databases

                read = check_databases([NamedData(n, o) for n, o in args.named])
                layouts = {
                    name: dataset.layout
                    for (name, _), dataset in zip(args.named, read, strict=True)
                }
                args.named = named_databases(args.evaluations, args.named[0][1], layouts)
            if args.list:
                list_clips(args.named, sys.stdout, args.evaluations)
            else:
                for name, options in args.named:
                    if len(args.named) > 1:
                        print(f"== {name}: {options.data}", flush=True)
                    extract_one(options, lambda *_: quiet_backend(args.verbose))
    except BrokenPipeError:  # | head: --list has what the reader wanted; extraction stopped
        reader_gone()
        if not args.list:  # it ended 0, as if extracted (review)
            with contextlib.suppress(OSError):  # stderr in the same pipe (2>&1 | head)
                print(
                    "error: the output's reader stopped (broken pipe): extraction stopped",
                    file=sys.stderr,
                )
            return 2
    except ExtractionInterrupted as err:  # Ctrl-C: say what was kept for the rerun
        print(err, file=sys.stderr)
        return 130
    except (DataError, PortError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unwritable cache folder, a full disk
        cache = args.named[0][1].cache_root  # the options every database shares
        print(f"error: {os_error_line(err, cache)}", file=sys.stderr)
        return 2
    return 0


def named_databases(
    evaluations: list[EvaluationOptions],
    options: FeatureOptions,
    layouts: dict[str, str] | None = None,
) -> list[tuple[str, FeatureOptions]]:
    """``--data`` (``options``), or every database the cross-domain ``evaluations`` name, each
    once; with the databases' ``layouts`` (as read), each as its setting takes it: every clip of
    OULU-NPU under ``--target-clips all`` or ``--source-clips all``, not Protocol 1's (probe
    BB)."""
    if not evaluations[0].cross_domain:
        return [("data", options)]
    from experiments.domains import WHOLE, taken_options

    named: dict[str, FeatureOptions] = {}
    for evaluation in evaluations:
        databases = [*evaluation.sources, evaluation.target]
        taken = [data.options for data in databases]
        if layouts is not None:
            taken = taken_options(evaluation, [layouts[data.name] for data in databases])
        for data, options in zip(databases, taken, strict=True):
            # once each: whole where one setting takes it whole (its every clip, every other
            # setting's too), not once per protocol (review: OULU-NPU listed twice)
            if data.name not in named or named[data.name].protocol not in WHOLE.values():
                named[data.name] = options
    return list(named.items())


def extract_one(
    options: FeatureOptions, before_extract: Callable[[str, dict[str, Any]], None] | None = None
) -> None:
    """One database's features extracted and summarised (``before_extract``: called before a
    cache miss loads the backbone)."""
    from core.data.layouts import folds
    from core.features import cached_features, skips
    from experiments.commands.features import species_lost, species_missing

    several = folds(options.protocol) if options.fold is None else ()
    if several:  # the features are the database's: one extraction serves every fold
        print(
            f"protocol {options.protocol} has folds {several[0]}-{several[-1]}: one extraction "
            f"serves them all (fold {several[0]}'s splits below)",
            flush=True,
        )
        options = dataclasses.replace(options, fold=several[0])
    datasets = []

    def announce(dataset) -> None:
        datasets.append(dataset)
        print(dataset.summary(), flush=True)
        for line in species_missing(dataset):  # as the sweep says it
            print(line, flush=True)

    skips.NAMED.clear()  # this database's warnings (two may share a clip's path: review)
    fs = cached_features(options, announce, before_extract)
    dataset = datasets[0]
    decode_skips = fs.skipped[len(dataset.skipped) :]
    if decode_skips:
        unnamed = [(path, why) for path, why in decode_skips if str(path) not in skips.NAMED]
        named = len(decode_skips) - len(unnamed)
        # the warnings are on stderr: "above" where both reach a terminal, not in a log of stdout
        above = (
            ""
            if not named
            else " (each in a warning)"
            if not unnamed
            else f" ({named} in warnings)"
        )
        print(f"skipped while decoding: {counted(len(decode_skips), 'clip')}{above}")
        for path, reason in unnamed:
            print(f"  skipped {path}: {reason}")
        # a split without a species: said by the sweep only (probe)
        for line in species_lost(dataset.clips, {clip.clip_id for clip in fs.clips}):
            print(line)
    if several:  # the entry is the database's; fold 1 reads a part of it (probe: 18 of 60)
        entry = len(fs.manifest["clips"])
        frames = entry * fs.frames_per_clip
        print(f"entry:    {counted(entry, 'clip')} of every fold, {frames} frames")
    fold = f" in fold {options.fold}'s splits" if several else ""
    print(f"clips:    {len(fs.clips)} usable{fold}, {len(fs.skipped)} skipped")
    print(f"frames:   {fs.frames}{fold} ({fs.frames_per_clip} per clip)")
    print(f"faces:    {fs.face_summary().removeprefix('face crop: ')}")  # said once
    if warning := fs.face_warning():
        print(warning)
    rate, took = fs.manifest.get("frames_per_second"), fs.manifest.get("extract_seconds")
    kept = fs.manifest.get("resumed_clips") or 0
    runs = f", with the {counted(kept, 'clip')} kept from interrupted runs" if kept else ""
    # every clip kept or reused: no rate ("0.00 (decoding and network, 0.0 s)": probe FF)
    measured = f"{rate:.2f}" if rate else "none measured (no frame went through the network)"
    if fs.extracted:
        how = f" (decoding and network, {took:.1f} s{runs})" if rate else runs
        print(f"frames/s: {measured}{how}")
        print(f"cache:    extracted in {fs.seconds:.1f} s with loading the backbone")
    else:
        print(f"frames/s: {measured} when extracted{runs}")
        print(f"cache:    reused (extracted {fs.manifest.get('created')}), {fs.seconds:.2f} s")
    print(f"path:     {fs.path}")
    weights = "RANDOM backbone (not VGG-Face)" if fs.random_weights else fs.weights_fingerprint
    print(f"weights:  {weights}")
    if fs.synthetic:
        print("data:     synthetic demonstration set")


def list_clips(
    named: list[tuple[str, FeatureOptions]],
    out: TextIO,
    evaluations: Sequence[EvaluationOptions] = (),
) -> None:
    """The clips of ``named`` as CSV, the summaries on stderr: one database's, or a setting's
    several with a database column first (each database's own columns: the union), a protocol of
    folds without ``--fold`` fold by fold with a fold column (the sweep runs every fold; both
    were refused: probes). Of one cross-domain setting (``evaluations``), a ``role`` column
    says what the study does with each clip: train, dev (the threshold), test, or unused (the
    splits alone did not say it, nor which clips ``--target-clips all`` tests: probe BB)."""
    from core.data.layouts import folds
    from core.features import load_data
    from experiments.domains import target_clips_tested, tested_clip, trained_role

    setting = evaluations[0] if len(evaluations) == 1 and evaluations[0].cross_domain else None
    if len(evaluations) > 1:  # its columns were dropped without a word (probe DD)
        print(
            f"no role column: a clip's role depends on the setting; list one of "
            f"{', '.join(e.setting for e in evaluations)} with --protocol for it",
            file=sys.stderr,
        )

    rows: list[dict[str, object]] = []
    for name, options in named:
        if len(named) > 1:
            print(f"== {name}: {options.data}", file=sys.stderr)
        several = folds(options.protocol) if options.fold is None else ()
        for index, fold in enumerate(several or [options.fold]):
            dataset = load_data(dataclasses.replace(options, fold=fold))
            if index == 0:
                if several:
                    print(
                        f"protocol {options.protocol}: folds {several[0]}-{several[-1]}, each "
                        f"fold's clips (the fold column); fold {several[0]}'s splits:",
                        file=sys.stderr,
                    )
                print(dataset.summary(), file=sys.stderr)
            first = {"database": name} if len(named) > 1 else {}
            first |= {"fold": fold} if several else {}
            if setting is None:
                rows += [first | row for row in clip_rows(dataset)]
                continue
            tested = None
            if name == setting.target.name:
                tested = target_clips_tested(dataset, setting.target_clips)
            for row in clip_rows(dataset):
                split = str(row["split"])
                if tested is None:
                    role = trained_role(split, setting.source_clips)
                else:
                    role = "test" if tested_clip(split, tested) else "unused"
                rows.append(first | {"role": role} | row)
    header = list(dict.fromkeys(key for row in rows for key in row))
    header.sort(key=lambda key: key == "face_boxes")  # last, as one database's list has it
    writer = csv.DictWriter(out, header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def clip_rows(dataset: Dataset) -> list[dict[str, object]]:
    """The dataset's clips: clip, split, label, species, subject, its own columns, and for a
    database that ships face boxes each clip's box file (empty: none, the detector crops it), so
    a misplaced box folder is seen before extraction (probe)."""
    from core.data.layouts.registry import box_files

    boxes = bool(box_files(dataset.layout))
    rows = []
    for clip in dataset.clips:
        found = clip.face_boxes.path if clip.face_boxes else None
        shown = (
            found.relative_to(dataset.root)
            if found and found.is_relative_to(dataset.root)
            else found
        )
        row = {"clip": clip.clip_id, "split": clip.split, "label": clip.label}
        row |= {"species": clip.attack_type, "subject": clip.subject}
        row |= {name: clip.columns.get(name, "") for name in dataset.column_names}
        rows.append(row | ({"face_boxes": shown or ""} if boxes else {}))
    return rows
