"""Writing the files a user names, and nothing else: checked before any work, written atomically, with the
permissions a new file gets, never through a link the writer did not make.

- `check_output(path)` fails fast (before a long job) when `path` cannot be written: it is a directory, a folder
  on its way is a file, or its folder refuses new files.
- `atomic_write(path, write)` has `write` fill a temporary file beside `path`, then renames it over `path`: a crash
  never leaves half a file at `path`. The temporary name carries the writer's process id, so a writer killed with
  SIGKILL leaves a temporary that the next write of the same file removes. A symbolic link at `path` is replaced,
  not followed.
- `append_line(path, line)` appends to a log, refusing a symbolic link there.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


class InputError(ValueError):
    """What the user gave cannot be used: a path, an option's value or a file's content. The message names it.

    The library raises it (or `InputTypeError`) for every problem with its input, and only for those: the CLI turns
    it into one line and exit code 2, and shows anything else (a bug) with its traceback."""


class InputTypeError(InputError, TypeError):
    """An input of the wrong type (an int where a model name belongs): an `InputError` that is also a TypeError."""


def umask() -> int:
    """The process's umask (read without changing it where /proc says it, else by setting and restoring it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output(path: str | os.PathLike, what: str = "output", probe: bool = True) -> Path:
    """Make sure a file can be written at `path` (its missing folders created), before any work is done; with
    `probe`, by creating and removing a file beside it (modes do not stop root; a read-only file system does).

    Raises:
        InputError: naming `path` and what stands in the way.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory; give a file path, e.g. {path / 'out'}")
    check_output_dir(path.parent, what=f"the folder of {what} {path}", probe=probe)
    return path


def check_output_dir(directory: str | os.PathLike, what: str = "output folder", probe: bool = True) -> Path:
    """Create `directory` if needed and (`probe`) make sure a file can be created in it. Raises InputError."""
    directory = Path(directory)
    for parent in (directory, *directory.parents):
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{what}: {parent} is a file, not a folder")
            break
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if probe:
            fd, name = tempfile.mkstemp(prefix=".mobilenet-probe.", dir=directory)
            os.close(fd)
            os.unlink(name)
    except OSError as error:
        raise InputError(f"{what}: cannot write in {directory} ({error.strerror or error})") from None
    return directory


def _temporary_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[^.]+\.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporaries that writers of `path` killed before they finished left beside it."""
    pattern, removed = _temporary_pattern(path), []
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return removed
    for sibling in siblings:
        match = pattern.fullmatch(sibling.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            try:
                sibling.unlink()
                removed.append(sibling)
            except OSError:
                pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call `write(tmp_path)`, then move the finished file over `path` (see the module docstring).

    Raises:
        InputError: `path` cannot be written (checked before `write` runs).
    """
    path = check_output(path, probe=False)  # the temporary below is the probe
    remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise InputError(f"cannot write {path} in {path.parent} ({error.strerror or error})") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600: give the file what a plain open() would
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def check_log(path: str | os.PathLike) -> Path:
    """Make sure `append_line` can add to `path`: a symbolic link or anything but a regular file there is refused."""
    path = Path(path)
    if path.is_symlink():
        raise InputError(f"{path} is a symbolic link; the log is not written through it: remove the link")
    if path.exists() and not path.is_file():
        raise InputError(f"{path} is not a regular file")
    return path


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append `line` and a newline to the log at `path`, created if missing; a symbolic link there is refused."""
    path = check_log(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as error:  # ELOOP: a link made since check_log
        raise InputError(f"cannot append to {path} ({error.strerror or error})") from None
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise InputError(f"{path} is not a regular file")
        handle.write(line + "\n")
