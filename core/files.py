"""Files put in place whole, where a reader or a rerun may already have older ones."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path


def put_in_place(files: Sequence[Path], folder: Path) -> None:
    """Copy ``files`` into ``folder`` under their names, each whole, none placed unless all were
    written: every copy is first written beside its place (a full disk fails there, the older
    files untouched and the copies removed), then each is renamed over the older one, which takes
    no room (a link there is replaced, not followed). Written in place, a full disk left
    ``compare.py --cross --out`` an empty cross_domain.csv (probe). An error names the file meant,
    not its copy."""
    tag = f"{os.getpid()}.{secrets.token_hex(4)}"  # two writers, on two hosts of one share too
    copies = [(folder / f".{path.name}.{tag}.tmp", folder / path.name) for path in files]
    meant = folder  # the file an error is about
    try:
        for path, (copy, place) in zip(files, copies, strict=True):
            meant = place
            with open(copy, "wb") as written:  # the umask's mode, as a file written in place
                written.write(path.read_bytes())
        for copy, place in copies:
            meant = place
            os.replace(copy, place)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(meant)) from err
    finally:
        for copy, _ in copies:
            with contextlib.suppress(OSError):  # a read-only folder refuses even that (probe)
                copy.unlink(missing_ok=True)
