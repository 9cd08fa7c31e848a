"""Putting artifacts and inputs in place: a rename or a hard link on one filesystem, a copy across two,
and never a half-written directory under the target's name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.jobs.place import link_file, move_directory


def model_dir(path: Path, weights: bytes = b"weights") -> Path:
    (path / "tokenizer").mkdir(parents=True)
    (path / "model.safetensors").write_bytes(weights)
    (path / "tokenizer" / "tokenizer.json").write_text("{}")
    return path


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A directory on another filesystem than tmp_path (RAM-backed /dev/shm), or a skip."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem to move across")
    with tempfile.TemporaryDirectory(dir=shm) as directory:
        yield Path(directory)


class TestMoveDirectory:
    def test_on_one_filesystem_it_is_a_rename(self, tmp_path: Path) -> None:
        source = model_dir(tmp_path / "out" / "adapter")
        inode = (source / "model.safetensors").stat().st_ino
        target = tmp_path / "artifacts" / "job" / "adapter"
        move_directory(source, target)
        assert (target / "model.safetensors").stat().st_ino == inode
        assert not source.exists()

    def test_an_existing_target_is_replaced_whole(self, tmp_path: Path) -> None:
        target = model_dir(tmp_path / "target", weights=b"old")
        (target / "stale.bin").write_bytes(b"from the old run")
        move_directory(model_dir(tmp_path / "source", weights=b"new"), target)
        assert (target / "model.safetensors").read_bytes() == b"new"
        assert not (target / "stale.bin").exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]  # nothing left aside

    def test_across_filesystems_it_copies_then_removes_the_source(
        self, tmp_path: Path, other_filesystem: Path
    ) -> None:
        source = model_dir(tmp_path / "adapter")
        target = other_filesystem / "artifacts" / "adapter"
        move_directory(source, target)
        assert (target / "model.safetensors").read_bytes() == b"weights"
        assert (target / "tokenizer" / "tokenizer.json").read_text() == "{}"
        assert not source.exists()
        assert sorted(p.name for p in target.parent.iterdir()) == ["adapter"]  # no partial left


class TestLinkFile:
    def test_on_one_filesystem_it_is_a_hard_link(self, tmp_path: Path) -> None:
        source = tmp_path / "files" / "blob"
        source.parent.mkdir()
        source.write_text("{}\n")
        target = tmp_path / "train.jsonl"
        target.write_text("an older copy")
        link_file(source, target)
        assert target.stat().st_ino == source.stat().st_ino and target.read_text() == "{}\n"

    def test_across_filesystems_it_copies(self, tmp_path: Path, other_filesystem: Path) -> None:
        source = tmp_path / "blob"
        source.write_text("{}\n")
        link_file(source, other_filesystem / "train.jsonl")
        assert (other_filesystem / "train.jsonl").read_text() == "{}\n"
