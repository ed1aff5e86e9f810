"""What a new extraction of a folder says of the cache entry it follows: the same folder and
options, other files. A file's name, size and modification time are part of the data's
fingerprint, so one touched file makes another cache key, and every clip is extracted again; the
old entry stays. Nothing said so but a changed fingerprint (probe)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

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


def say_data_changed(root: Path, key: str, parts: dict[str, Any], dataset: Dataset) -> None:
    """A warning, before ``dataset``'s clips are extracted into the new entry ``key`` of
    ``root`` (of the cache key ``parts``), naming the latest entry of the same folder, layout
    and options and other data: which clips changed, were added or removed since, that every
    clip is extracted again, and that the entry is kept. Not said for the synthetic set (its
    folders are its seeds'), where ``key``'s own entry is there (damaged: rebuilt) or an
    interrupted extraction of it is resumed (said when it began), nor of entries made before
    manifests recorded their folder."""
    if dataset.synthetic or any(p.is_dir() for p in (root / key, root / f"{PENDING_PREFIX}{key}")):
        return  # the demo set; an entry of this data rebuilt (damaged), or one resumed
    folder, layout = str(dataset.root.resolve()), dataset.layout
    options = {k: v for k, v in parts.items() if k != "data"}
    found = []
    for path in root.glob(f"*/{store.MANIFEST_FILE}"):
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            theirs = dict(manifest["key_parts"])
            same = (manifest.get("dataset_folder"), manifest.get("layout")) == (folder, layout)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # another's file, or one being replaced: no entry to name
        other_data = theirs.pop("data", None) != parts.get("data")  # an invalid entry: no
        if same and other_data and theirs == options and path.parent.name != key:
            found.append((str(manifest.get("created", "")), path.parent, manifest))
    if not found:
        return
    created, entry, manifest = max(found, key=lambda f: f[0])
    try:
        held = store.size_said(sum(store.on_disk(f) for f in entry.iterdir()))
    except OSError:  # deleted meanwhile
        return
    log.warning(
        "%s changed since cache entry %s (%s): %s; every clip is extracted again (cp -p and "
        "rsync -t keep files' times). That entry is kept (%s): delete it once that state of "
        "the data is gone",
        dataset.root,
        entry.name,
        created,
        _changes(manifest.get("signatures"), dataset.signatures),
        held,
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
