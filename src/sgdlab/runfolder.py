"""Who may write where: a folder belongs to one sgdlab run, sweep or store, and one writer at a time.

Every command that writes a folder (train, sweep, --then-train, data convert/synth) goes through
``claim_folder``; every command that writes files into a folder the user chose (predict --out,
demo) through ``check_output_file``.  The rules:

- never the current directory, one of its parents, the root or the home folder;
- an existing folder is replaced only with ``overwrite`` and only when everything in it is
  something sgdlab writes for that kind of folder (a foreign file -> refused, nothing deleted);
- a lock file (``.sgdlab.lock``: owner PID, command, start time) is held with ``flock`` for the
  life of the work; a second writer exits 2 naming the owner.  The kernel drops the lock when
  its owner exits in any way, so a lock file left by a killed process is stale and taken over.
"""

import json
import os
import shutil
import time
from contextlib import contextmanager

from .errors import RunExistsError, SgdlabError

LOCK_NAME = ".sgdlab.lock"
RUN_FILES = frozenset({"config.json", "metrics.csv", "summary.json", "model.safetensors", "checkpoint.safetensors",
                       "iteration_loss.json", "loss.png", "accuracy.png", "confusion.png", "model.onnx"})
RUN_FOLDERS = frozenset({"tensorboard"})
SWEEP_FILES = frozenset({"sweep.json", "sweep.csv", "sweep.png", "range_test.csv", "range_test.json",
                         "range_test.png"})
STORE_FILES = frozenset({"meta.json", "x.npy", "t.npy", ".x.npy.partial", ".t.npy.partial", ".meta.json.partial"})
MARKERS = {"run": ("config.json",), "sweep": ("sweep.json", "range_test.json", "range_test.csv"),
           "store": ("meta.json", ".x.npy.partial"), "tensorboard": ()}


class FolderLockedError(RunExistsError):
    """Another live process holds the folder's lock."""


def _is_temporary(name):
    return name.startswith(".") and name.endswith(".tmp")


def foreign_entries(path, kind):
    """Names under ``path`` that sgdlab does not write for a folder of ``kind`` (run | sweep | store)."""
    foreign = []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        name = entry.name
        if name == LOCK_NAME or _is_temporary(name):
            ok = entry.is_file(follow_symlinks=False)
        elif kind == "run":
            ok = (name in RUN_FILES and entry.is_file(follow_symlinks=False)) or \
                 (name in RUN_FOLDERS and entry.is_dir(follow_symlinks=False))
        elif kind == "store":
            ok = name in STORE_FILES and entry.is_file(follow_symlinks=False)
        elif kind == "tensorboard":          # TensorBoard event files, in sub-folders per run or trial
            ok = (name.startswith("events.out.tfevents.") and entry.is_file(follow_symlinks=False)) or \
                 (entry.is_dir(follow_symlinks=False) and not foreign_entries(entry.path, "tensorboard"))
        elif kind == "sweep":
            if name in SWEEP_FILES:
                ok = entry.is_file(follow_symlinks=False)
            elif name == "winner":
                ok = entry.is_dir(follow_symlinks=False) and _is_kind(entry.path, "run")
            elif name == "trials":
                ok = entry.is_dir(follow_symlinks=False) and not _foreign_trials(entry.path)
            else:
                ok = False
        else:
            raise ValueError(f"unknown folder kind {kind!r}")
        if not ok:
            foreign.append(name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
    return foreign


def _foreign_trials(path):
    return [e.name for e in os.scandir(path)
            if not (e.is_dir(follow_symlinks=False) and _is_kind(e.path, "run", allow_unmarked=True))]


def _is_kind(path, kind, allow_unmarked=False):
    """True when ``path`` holds only what sgdlab writes for ``kind`` and (unless allowed) its marker file."""
    names = set(os.listdir(path))
    if foreign_entries(path, kind):
        return False
    if kind == "run" and "config.json" in names:
        return _looks_like_config(os.path.join(path, "config.json"))
    real = {n for n in names if n != LOCK_NAME and not _is_temporary(n)}
    return allow_unmarked or not real or not MARKERS[kind] or any(m in names for m in MARKERS[kind])


def _looks_like_config(path):
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"dataset", "layers", "optimizer", "lr"} <= set(config)


def check_location(path, what="--out"):
    """Refuse an empty path, the current folder, a parent of it, the root and the home folder."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        raise SgdlabError(f"{what}={os.fspath(path) if isinstance(path, os.PathLike) else path!r} is empty: "
                          f"give a folder name")
    path = os.fspath(path)
    real, here = os.path.realpath(path), os.path.realpath(os.getcwd())
    if real == here or here.startswith(real.rstrip(os.sep) + os.sep) or real == os.sep:
        raise RunExistsError(f"{what} {path!r} is the current folder or one of its parents: sgdlab writes runs "
                             f"into a folder of their own, e.g. {what} runs/NAME")
    if real == os.path.realpath(os.path.expanduser("~")):
        raise RunExistsError(f"{what} {path!r} is the home folder: choose a folder of its own, e.g. runs/NAME")
    if os.path.islink(path):
        raise RunExistsError(f"{what} {path!r} is a symbolic link: give the folder itself")
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunExistsError(f"{what} {path!r} is a file: choose a folder")
    return path


def check_replaceable(path, kind, overwrite, resume=False, what="--out", probe_lock=True):
    """Raise unless ``path`` is absent, empty, or (with overwrite/resume) an sgdlab ``kind`` folder; a folder
    another live process holds -> FolderLockedError naming it, whatever it holds."""
    owner = lock_owner(path) if probe_lock else None
    if owner is not None:
        raise FolderLockedError(f"{path!r} is in use by {owner}: wait for it to end or choose another {what}")
    if resume:                  # nothing is deleted: the files themselves are checked by their readers
        if not os.path.isdir(path):
            raise RunExistsError(f"cannot resume {path!r}: no such {kind} folder")
        return
    if not os.path.isdir(path):
        return
    names = [n for n in os.listdir(path) if n != LOCK_NAME and not _is_temporary(n)]
    if not names:
        return
    foreign = foreign_entries(path, kind)
    if foreign or not _is_kind(path, kind):
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise RunExistsError(f"{what} {path!r} already exists and is not an sgdlab {kind} folder"
                             + (f" (it holds {shown})" if shown else "")
                             + f": --overwrite never replaces it; choose another {what}")
    if not overwrite:
        hint = "--resume to continue it, " if kind == "sweep" else ""
        raise RunExistsError(f"{kind} folder {path!r} already exists: pass {hint}--overwrite to replace it or "
                             f"{what} to choose another")


class FolderLock:
    """An exclusive ``flock`` on ``folder/.sgdlab.lock`` holding the owner's PID, command and start time."""

    def __init__(self, folder, command):
        self.path = os.path.join(folder, LOCK_NAME)
        self.command = command
        self.fd = None

    def acquire(self):
        import fcntl

        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise FolderLockedError(f"{os.path.dirname(self.path)!r} is in use by {owner_text(owner)}: wait "
                                        f"for it to end or choose another --out") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # else the previous owner unlinked it between our open and flock: try again
                break
            os.close(fd)
        else:
            raise FolderLockedError(f"could not lock {self.path!r}: it keeps being replaced")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": self.command,
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode(), 0)
        self.fd = fd
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


def lock_owner(folder):
    """'sgdlab train (PID ...)' when a live process holds ``folder``'s lock, else None (probed, never created)."""
    import fcntl

    try:
        fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None                       # nobody holds it: a stale lock file
    except BlockingIOError:
        raw = _read_owner(fd)
        return None if _pid_of(raw) == os.getpid() else owner_text(raw)    # held by this process: ours
    finally:
        os.close(fd)


def _read_owner(fd, wait=1.0):
    """The lock file's text.  Its owner writes it just after taking the lock, so a text that does not
    parse yet (read in between) is read again for up to ``wait`` seconds before it is taken as it is."""
    deadline = time.monotonic() + wait
    while True:
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        if _pid_of(raw) is not None or time.monotonic() > deadline:
            return raw
        time.sleep(0.01)


def _pid_of(raw):
    try:
        return int(json.loads(raw)["pid"])
    except (ValueError, KeyError, TypeError):
        return None


def owner_text(raw):
    """'sgdlab train (PID 123, since ...)' from a lock file's text."""
    try:
        info = json.loads(raw)
        return f"{info['command']} (PID {int(info['pid'])}, since {info['started']})"
    except (ValueError, KeyError, TypeError):
        return "another sgdlab process"


class Claim:
    """A folder owned for the life of a ``with claim_folder(...)`` block; ``clear()`` empties it for new files."""

    def __init__(self, path, kind):
        self.path, self.kind = path, kind

    def clear(self):
        """Delete what an earlier run of the same kind left (checked again: only sgdlab's files)."""
        foreign = foreign_entries(self.path, self.kind)
        if foreign:
            raise RunExistsError(f"{self.path!r} now holds {', '.join(foreign)}: refusing to replace it")
        for entry in os.scandir(self.path):
            if entry.name == LOCK_NAME:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


@contextmanager
def claim_folder(path, kind, overwrite=False, resume=False, command="sgdlab", what="--out"):
    """Own ``path`` (a ``kind`` folder) for the block: checked, created, locked; yields a ``Claim``.

    Nothing is deleted here: call ``claim.clear()`` when the new files are about to be written,
    so a failure before that (bad data, bad settings) leaves the old folder whole.
    """
    path = check_location(path, what)
    check_replaceable(path, kind, overwrite, resume, what)
    created = _missing_folders(path)
    os.makedirs(path, exist_ok=True)
    lock = FolderLock(path, command).acquire()
    try:
        check_replaceable(path, kind, overwrite, resume, what, probe_lock=False)   # again, under the lock: another
        yield Claim(path, kind)                                  # writer may have finished meanwhile
    finally:
        lock.release()
        for folder in created:                                   # innermost first: a refused run leaves no trace
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)


def _missing_folders(path):
    """The folders ``os.makedirs(path)`` would create, innermost first."""
    missing, folder = [], os.path.abspath(path)
    while not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


def check_output_file(path, protected=(), overwrite=True, what="--out"):
    """Refuse writing ``path`` when it is empty, a folder, or the same file as one of ``protected`` (inputs)."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        raise SgdlabError(f"{what}={path!r} is empty: give a file name")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise RunExistsError(f"{what} {path!r} is a folder: give a file name")
    real = os.path.realpath(path)
    for other in protected:
        if other is not None and os.path.exists(other) and os.path.realpath(other) == real:
            raise RunExistsError(f"{what} {path!r} is the input file {os.fspath(other)!r}: writing it would "
                                 f"replace it; choose another {what}")
    if os.path.exists(path) and not overwrite:
        raise RunExistsError(f"{path!r} already exists: pass --overwrite to replace it or choose another {what}")
    return path
