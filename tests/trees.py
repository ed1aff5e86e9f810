"""Trees named as the real databases are, of real tiny videos, with the fewest clips that leave
every split and species of the protocols the end-to-end tests run non-empty.

``write_databases`` writes Replay-Attack, OULU-NPU, CASIA-FASD and MSU-MFSD side by side: the
intra-dataset protocols (tests/test_protocols_end_to_end.py) and the cross-domain settings
(tests/test_cross_domain.py) read them through one feature cache.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.test_layouts_msu_replay_mobile import msu_tree
from tests.test_protocols import Writer, casia_tree, oulu_tree, replay_tree, tiny_video

FOLDERS = {
    "replay-attack": "replayattack",
    "oulu": "OULU-NPU",
    "casia": "CASIA-FASD",
    "msu": "MSU-MFSD",
}


def only(keep: Callable[[Path], bool]) -> Writer:
    """A writer that makes a tiny video of the clips ``keep`` accepts and skips the others."""
    return lambda path: tiny_video(path) if keep(path) else path


def replay_keeps(path: Path) -> bool:
    """Controlled light: the first real access, each device's photo attack on a fixed support."""
    real = path.parent.name == "real" and path.stem.endswith("_1")
    attack = path.parent.name == "fixed" and "_photo_" in path.stem
    return "controlled" in path.stem and (real or attack)


def oulu_keeps(path: Path) -> bool:
    """Train and dev users: session 1, phones 1 and 2, files 1, 2, 4 (seen instruments), so
    each of the six folds trains without its test phone. Test users: session 3, every phone,
    files 1, 3, 5 (unseen instruments)."""
    phone, session, user, file = (int(part) for part in path.stem.split("_"))
    if user <= 35:
        return session == 1 and phone in (1, 2) and file in (1, 2, 4)
    return session == 3 and file in (1, 3, 5)


def casia_keeps(path: Path) -> bool:
    """The normal quality video of each species: 1 bona fide, 3 warped, 5 cut, 7 video."""
    return path.stem in ("1", "3", "5", "7")


def msu_keeps(path: Path) -> bool:
    """The android camera's bona fide video, printed photo and iPad replay of each subject."""
    return "_android_" in path.stem and (
        "real_" in path.stem or "printed" in path.stem or "ipad" in path.stem
    )


def write_databases(root: Path) -> Path:
    """The four databases under ``root`` (named as :data:`FOLDERS` says)."""
    clients = {"train": (1,), "devel": (2,), "test": (3,)}
    replay_tree(root / FOLDERS["replay-attack"], clients, only(replay_keeps))
    oulu_tree(root / FOLDERS["oulu"], (1, 21, 36), only(oulu_keeps))
    casia_tree(root / FOLDERS["casia"], train=(1, 16), test=(1,), write=only(casia_keeps))
    # subject 2 trains, 22 is dev (the msu protocol's rule), 1 is a test subject
    msu_tree(root / FOLDERS["msu"], (1, 2, 22), only(msu_keeps))
    return root
