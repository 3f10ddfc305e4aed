"""The local backend of `umx_core.storage` (call that module, not this one): each file operation on
local paths, writes renamed into place so that no half-written file has its final name."""

import contextlib
import glob
import hashlib
import os
import shutil

from umx_core.errors import UMXError


def exists(path):
    """Whether the file exists."""
    return os.path.exists(path)


def read_bytes(path):
    """The whole file; UMXError naming it if it is missing."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise UMXError(f"{path}: no such file") from exc


def write_atomic(path, write):
    """`write(tmp)` beside `path`, then rename: never a half-written file under the final name."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)
    for left in glob.glob(glob.escape(path) + ".tmp-*"):  # of writers killed before their rename
        if not process_running(left.rsplit("-", 1)[-1]):
            with contextlib.suppress(OSError):
                os.remove(left)


def write_bytes(path, data, metadata=None):
    """Write `data` under a temporary name renamed into place (`metadata` is for gs:// only)."""
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    write_atomic(path, write)


def upload_file(path, target):
    """Copy the local file `path` to `target`, renamed into place."""
    write_atomic(target, lambda tmp: shutil.copyfile(path, tmp))


def process_running(pid):
    """Whether the process `pid` (a number or its text) runs on this machine; False for this process
    (its own earlier writes are over) and for text that is no pid."""
    if not str(pid).isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, another user's
        return True
    return True


def open_read(path):
    """The file opened for reading; UMXError naming it if it is missing."""
    try:
        return open(path, "rb")
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise UMXError(f"{path}: no such file") from exc


def list_dirs(prefix):
    """The names of a folder's immediate subfolders, sorted."""
    if not os.path.isdir(prefix):
        raise UMXError(f"{prefix}: no such directory")
    return sorted(d for d in os.listdir(prefix) if os.path.isdir(os.path.join(prefix, d)))


def walk(folder):
    """Every file below `folder`, as full paths, in no set order."""
    for root, _, files in os.walk(folder):
        yield from (os.path.join(root, f) for f in files)


def list_objects(prefix, match_glob=None):
    """`(path, identity, {})` of every file below a folder (`match_glob` is for gs:// only)."""
    for path in walk(prefix):
        try:
            yield path, identity(path), {}
        except UMXError:  # removed since it was listed
            continue


@contextlib.contextmanager
def local_dir(path):
    """The folder itself (it is already local)."""
    if not os.path.isdir(path):
        raise UMXError(f"{path}: no such directory")
    yield path


def delete(path):
    """Remove the file if it exists."""
    if os.path.exists(path):
        os.remove(path)


def identity(path):
    """`{"size", "mtime_ns"}` of the file."""
    try:
        stat = os.stat(path)
    except FileNotFoundError as exc:
        raise UMXError(f"{path}: no such file") from exc
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def checksum(path):
    """`sha256:<hex>` of the file's bytes."""
    return file_digest(path, "sha256")


def file_digest(path, algorithm):
    """`algorithm:hex` of a local file's bytes, read in blocks (`algorithm`: a hashlib name)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return f"{algorithm}:{digest.hexdigest()}"
