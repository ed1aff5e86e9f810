"""What a new extraction of a folder takes from the cache entry it follows: the same folder and
options, other files. A file's name, size and modification time are part of the data's
fingerprint, so one touched file makes another cache key; the clips whose files are unchanged
take their features from the old entry, which stays, and only the others are extracted. Nothing
had been said but a changed fingerprint, and every clip was extracted again (probes)."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.data.dataset import Dataset
from core.features import store
from core.features.resume import PENDING_PREFIX
from core.words import counted

log = logging.getLogger(__name__)


def recorded(dataset: Dataset) -> dict[str, Any]:
    """What an entry's manifest records for :func:`say_data_changed`: the folder, resolved, the
    layout that read it, and each source clip's file stamp."""
    return {
        "dataset_folder": str(dataset.root.resolve()),
        "layout": dataset.layout,
        "signatures": dataset.signatures,
    }


def foreign_backend(manifest: dict[str, Any]) -> str | None:
    """Why an entry of a weights file is not TensorFlow's though under its key: another backend
    extracted it there, as one did before the backend was a part of the key (its manifest's
    device names it); else None. Such an entry is extracted again, and gives no rows to a
    changed folder's new entry (review)."""
    parts = manifest.get("key_parts") or {}
    made = str(manifest.get("device", "")).rpartition("Keras on ")[2]
    if made in ("", "tensorflow") or "backend" in parts:
        return None
    if str(parts.get("weights", "")).startswith("random:"):  # its fingerprint names it
        return None
    return (
        f"extracted under KERAS_BACKEND={made} into TensorFlow's entry (before 2026-12-07, "
        "when the backend became a part of the key)"
    )


@dataclass(frozen=True)
class Earlier:
    """The entry a new extraction follows: the latest of the folder's earlier state (the same
    folder, layout and options, other files), or of the folder it was copied from."""

    entry: Path
    manifest: dict[str, Any]


def earlier_entry(root: Path, key: str, parts: dict[str, Any], dataset: Dataset) -> Earlier | None:
    """The latest entry in ``root`` of ``dataset``'s folder before its files changed, for the new
    entry ``key`` (of the cache key ``parts``); else, for a folder with no entry of its own (a
    copy, ``cp -p``, that used its original's entry until it changed: every clip had been
    extracted again, probe V), the entry of another folder read by the same layout that shares
    the most clips' files with it (same names, sizes and times). None for the synthetic set (its
    folders are its seeds') and entries made before manifests recorded their folder."""
    if dataset.synthetic:
        return None
    folder, layout = str(dataset.root.resolve()), dataset.layout
    options = {k: v for k, v in parts.items() if k != "data"}
    found, copies = [], []
    for path in root.glob(f"*/{store.MANIFEST_FILE}"):
        if path.parent.name.startswith("."):  # a pending, trashed or half-published folder
            continue
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            theirs = dict(manifest["key_parts"])
            same = manifest.get("dataset_folder") == folder
            stamps = dict(manifest.get("signatures") or {}) if not same else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # another's file, or one being replaced: no entry to name
        other_data = theirs.pop("data", None) != parts.get("data")  # an invalid entry: no
        if manifest.get("layout") != layout or not other_data or theirs != options:
            continue
        if foreign_backend(manifest):  # another backend's rows under TensorFlow's key
            continue
        shared = sum(dataset.signatures.get(clip) == stamp for clip, stamp in stamps.items())
        if path.parent.name != key and (same or shared):
            # the latest: "created" counts seconds, and two entries can share one (the file's
            # time in nanoseconds, written as it was published, tells them apart)
            with contextlib.suppress(OSError):
                when = (str(manifest.get("created", "")), path.stat().st_mtime_ns)
                (found if same else copies).append(((shared, *when), path.parent, manifest))
    if not found and not copies:
        return None
    _, entry, manifest = max(found or copies, key=lambda f: f[0])
    return Earlier(entry, manifest)


def reusable(earlier: Earlier, dataset: Dataset) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """The features of ``dataset``'s clips whose files are unchanged since ``earlier`` (their
    stamps equal), by clip id: (frames_per_clip, 4096) rows and the entry's record of the clip
    (its faces). Every clip had been extracted again for one changed file (probe: minutes for
    40 clips, hours for a database). Empty where the entry does not read back whole."""
    try:
        array, manifest = store.load_entry(earlier.entry.parent, earlier.entry.name)
        before = manifest["signatures"]
        records = manifest["clips"]
        if not isinstance(before, dict) or len(records) != len(array):
            return {}
    except (OSError, KeyError, TypeError, store.CacheEntryInvalid) as err:
        log.warning("not reusing the features of %s: %s", earlier.entry, err)  # said why (review)
        return {}
    now = dataset.signatures
    return {
        record["clip_id"]: (array[row], record)
        for row, record in enumerate(records)
        if isinstance(record, dict)
        and before.get(record.get("clip_id")) == now.get(record.get("clip_id")) is not None
    }


def say_data_changed(root: Path, key: str, earlier: Earlier, dataset: Dataset, reused: int) -> None:
    """A warning, before ``dataset``'s clips are extracted into the new entry ``key`` of
    ``root``, naming the entry of its folder's earlier state (or of its original's folder):
    which clips changed, were added or removed since, how many unchanged clips' features it
    gives (``reused``), and that it is kept. Not said where ``key``'s own entry is there
    (damaged: rebuilt) or an interrupted extraction of it is resumed (said when it began)."""
    if any(p.is_dir() for p in (root / key, root / f"{PENDING_PREFIX}{key}")):
        return  # an entry of this data rebuilt (damaged), or one resumed
    entry, manifest = earlier.entry, earlier.manifest
    try:
        held = store.size_said(sum(store.on_disk(f) for f in entry.iterdir()))
    except OSError:  # deleted meanwhile
        return
    others = len(dataset.source_clips or dataset.clips) - reused
    own = manifest.get("dataset_folder") == str(dataset.root.resolve())
    log.warning(
        "%s %s cache entry %s (%s): %s; the features of its %s are reused, the other %s "
        "extracted where they decode (cp -p and rsync -t keep files' times). That entry is "
        "kept (%s)%s",
        dataset.root,
        "changed since" if own else f"differs from {manifest.get('dataset_folder')}, whose",
        entry.name,
        manifest.get("created", ""),
        _changes(manifest.get("signatures"), dataset.signatures),
        counted(reused, "unchanged clip"),
        counted(others, "clip"),
        held,
        ": delete it once that state of the data is gone" if own else "",
    )


def _changes(before: Any, now: dict[str, str]) -> str:
    """``1 clip changed (train/real/s01), 0 added, 0 removed``."""
    if not isinstance(before, dict):
        before = {}
    changed = sorted(k for k in now.keys() & before.keys() if now[k] != before[k])
    added, removed = sorted(now.keys() - before.keys()), sorted(before.keys() - now.keys())
    said = []
    for ids, what in ((changed, "changed"), (added, "added"), (removed, "removed")):
        first = f" ({ids[0]}{', ...' if len(ids) > 1 else ''})" if ids else ""
        said.append(f"{counted(len(ids), 'clip')} {what}{first}")
    return ", ".join(said)
