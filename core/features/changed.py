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
from core.words import counted

log = logging.getLogger(__name__)


def recorded(dataset: Dataset) -> dict[str, Any]:
    """What an entry's manifest records for :func:`say_data_changed`: the folder, resolved, and
    each source clip's file stamp."""
    return {"dataset_folder": str(dataset.root.resolve()), "signatures": dataset.signatures}


def say_data_changed(root: Path, parts: dict[str, Any], dataset: Dataset) -> None:
    """A warning, before ``dataset``'s clips are extracted into a new entry of ``root`` (of the
    cache key ``parts``), naming the latest entry of the same folder and options: which clips
    changed, were added or removed since, that every clip is extracted again, and that the
    entry is kept. The synthetic set's folders are its seeds': not said."""
    if dataset.synthetic:
        return
    folder = dataset.root.resolve()
    options = {k: v for k, v in parts.items() if k != "data"}
    found = []
    for path in root.glob(f"*/{store.MANIFEST_FILE}"):
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            theirs = manifest["key_parts"]
            at = Path(manifest.get("dataset_folder") or manifest["dataset_root"]).resolve()
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if at == folder and {k: v for k, v in theirs.items() if k != "data"} == options:
            found.append((str(manifest.get("created", "")), path.parent, manifest))
    if not found:
        return
    created, entry, manifest = max(found, key=lambda f: f[0])
    held = sum(store.on_disk(f) for f in entry.iterdir())
    log.warning(
        "%s changed since cache entry %s (%s): %s; every clip is extracted again (cp -p and "
        "rsync -t keep files' times). That entry is kept (%s): delete it once that state of "
        "the data is gone",
        dataset.root,
        entry.name,
        created or "made before entries said when",
        _changes(manifest.get("signatures"), dataset.signatures),
        store.size_said(held),
    )


def _changes(before: Any, now: dict[str, str]) -> str:
    """``1 clip changed (train/real/s01), 0 added, 0 removed``; or that the entry does not say."""
    if not isinstance(before, dict):
        return "files renamed, resized or touched (the entry does not record which)"
    changed = sorted(k for k in now.keys() & before.keys() if now[k] != before[k])
    added, removed = sorted(now.keys() - before.keys()), sorted(before.keys() - now.keys())
    said = []
    for ids, what in ((changed, "changed"), (added, "added"), (removed, "removed")):
        first = f" ({ids[0]}{', ...' if len(ids) > 1 else ''})" if ids else ""
        said.append(f"{counted(len(ids), 'clip')} {what}{first}")
    return ", ".join(said)
