"""Writing only what the user named: checked before work, atomic, umask permissions, no links followed, no
temporaries left by a killed writer."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mobilenet._io import InputError, append_line, atomic_write, check_output, umask, write_text


@pytest.fixture
def mask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_umask_is_read_without_changing_it(mask_022):
    assert umask() == 0o022
    assert umask() == 0o022


def test_new_file_gets_the_mode_a_plain_open_gives(tmp_path, mask_022):
    write_text(tmp_path / "a.json", "{}")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644


def test_overwritten_file_gets_the_mode_a_new_file_gets(tmp_path, mask_022):
    path = tmp_path / "shared.onnx"
    path.write_text("old")
    path.chmod(0o600)
    write_text(path, "new")
    assert path.stat().st_mode & 0o777 == 0o644
    assert path.read_text() == "new"


def test_a_link_at_the_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "report.html"
    link.symlink_to(victim)
    write_text(link, "<html>")
    assert victim.read_text() == "keep me"
    assert not link.is_symlink()
    assert link.read_text() == "<html>"


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("old")

    def fail(tmp):
        Path(tmp).write_text("half")
        raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_temporary_of_a_sigkilled_writer_is_removed_by_the_next_write(tmp_path):
    path = tmp_path / "out.onnx"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from mobilenet._io import atomic_write
        def slow(tmp):
            Path(tmp).write_text("partial")
            print("writing", flush=True)
            time.sleep(60)
        atomic_write({str(path)!r}, slow)
    """)
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1
    assert left[0].name.startswith(".out.onnx.")
    assert not path.exists()
    write_text(path, "done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]


def test_a_live_writers_temporary_is_kept(tmp_path):
    path = tmp_path / "out.onnx"
    live = tmp_path / f".out.onnx.{os.getppid()}.abcd.tmp"  # our parent process is alive
    live.write_text("in progress")
    write_text(path, "done")
    assert live.exists()


def test_check_output_refuses_a_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        check_output(tmp_path)


def test_check_output_refuses_a_folder_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output(tmp_path / "file" / "sub" / "out.onnx")


def test_check_output_creates_missing_folders(tmp_path):
    check_output(tmp_path / "a" / "b" / "out.onnx")
    assert (tmp_path / "a" / "b").is_dir()
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the probe is gone


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a read-only one, or (as root, who ignores modes) sysfs."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def test_check_output_refuses_an_unwritable_folder(tmp_path):
    folder = unwritable_folder(tmp_path)
    with pytest.raises(InputError, match="cannot write in"):
        check_output(folder / "out.onnx")


def test_append_line_refuses_a_symbolic_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("")
    (tmp_path / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link"):
        append_line(tmp_path / "metrics.jsonl", "{}")
    assert victim.read_text() == ""


def test_append_line_appends(tmp_path, mask_022):
    append_line(tmp_path / "log", "a")
    append_line(tmp_path / "log", "b")
    assert (tmp_path / "log").read_text() == "a\nb\n"
    assert (tmp_path / "log").stat().st_mode & 0o777 == 0o644
