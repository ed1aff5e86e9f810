"""What a full or read-only disk is said as (experiments/stores/disk.py, core/files.py), on real
small disks (tests/disks.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.files import put_in_place
from experiments.stores.disk import disk_full
from tests.disks import fill, read_only, tmpfs


def test_a_copy_that_fills_its_disk_names_the_copy_not_its_source(tmp_path) -> None:
    """A trial's model copied into a full artifact store was said as the temporary file it was
    copied from, on a disk with 76 GB free (probe): a copy's error names its source first."""
    source = tmp_path / "model.bin"
    source.write_bytes(bytes(2 << 20))
    with tmpfs(tmp_path / "disk", 1) as disk:
        fill(disk)
        with pytest.raises(OSError) as failed:
            shutil.copyfile(source, disk / "model.bin")
    said = disk_full(failed.value, "as trial 1 saved its files", "(the trial runs again)")
    assert str(said) == (
        f"no space left on the device ({disk / 'model.bin'}) as trial 1 saved its files: free "
        "space and rerun the same command (the trial runs again)"
    )


def test_files_put_in_a_read_only_folder_name_the_file_meant(tmp_path) -> None:
    """It named its own copy, ".cross_domain.csv.1648.2591925d.tmp": removing the copy that was
    never made failed too, on the read-only folder, and replaced the error (probe)."""
    table = tmp_path / "cross_domain.csv"
    table.write_text("head,ACER\n")
    with tmpfs(tmp_path / "disk", 1) as disk:
        read_only(disk)
        with pytest.raises(OSError) as failed:
            put_in_place([table], disk)
        assert (failed.value.filename, failed.value.strerror) == (
            str(disk / "cross_domain.csv"),
            "Read-only file system",
        )
        assert list(Path(disk).iterdir()) == []
