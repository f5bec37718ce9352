"""`published` leaves no scratch folder behind: not on an error, a SIGTERM, nor (next run) a SIGKILL."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from components.io.artifacts import published, remove_stale_partials

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import sys, time
from components.io.artifacts import published
with published(sys.argv[1]) as scratch:
    open(scratch + "/part-0", "w").write("half an artifact")
    print("writing", flush=True)
    time.sleep(60)
"""


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.partial-*"))


def start_writer(target: Path) -> subprocess.Popen:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert writer.stdout.readline() == "writing\n"
    return writer


def test_a_killed_writers_scratch_folder_is_removed_by_the_next_run(tmp_path):
    target = tmp_path / "run-1" / "download" / "train_data"
    writer = start_writer(target)
    assert partials(target.parent)  # the scratch folder of a live writer ...
    assert remove_stale_partials(tmp_path) == []  # ... is kept: it may be another run's step
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert partials(target.parent) and not target.exists()

    removed = remove_stale_partials(tmp_path)  # what `run --local` does when it starts
    assert [Path(p).parent for p in removed] == [target.parent]
    assert partials(target.parent) == []


def test_the_next_publish_beside_a_killed_one_removes_its_scratch(tmp_path):
    target = tmp_path / "model"
    writer = start_writer(target)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    with published(str(target)) as scratch:
        assert partials(tmp_path) == [Path(scratch).name]  # only this writer's own
        Path(scratch, "config.json").write_text("{}")
    assert partials(tmp_path) == [] and (target / "config.json").exists()


def test_sigterm_ends_the_writer_through_its_cleanup(tmp_path):
    target = tmp_path / "model"
    writer = start_writer(target)
    writer.send_signal(signal.SIGTERM)
    assert writer.wait(timeout=30) == 128 + signal.SIGTERM
    assert partials(tmp_path) == [] and not target.exists()


def test_an_error_publishes_nothing(tmp_path):
    target = tmp_path / "data"
    with pytest.raises(ValueError):
        with published(str(target)) as scratch:
            Path(scratch, "rows").write_text("1")
            raise ValueError("bad row")
    assert not target.exists() and partials(tmp_path) == []


def test_scratch_folders_of_other_hosts_are_kept_and_ownerless_ones_removed(tmp_path):
    container = tmp_path / ".model.partial-7@0f3c2a9be1d4-abc_1234"  # written inside a container
    legacy = tmp_path / ".model.partial-k2j3h4g5"  # the layout before pids: no owner to ask
    container.mkdir()
    legacy.mkdir()
    assert remove_stale_partials(tmp_path) == [str(legacy)]
    assert container.exists()
