"""Building the sandbox image: from the Dockerfile (online) or from a debootstrapped Debian (offline).

The offline path needs no image registry, only Debian's package mirror: ``debootstrap`` a minimal
Debian with python3, strip it, and ``docker import`` the tree. It must run as root (debootstrap does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

DEFAULT_IMAGE = "codegym-sandbox:latest"
DOCKERFILE = Path(__file__).with_name("Dockerfile")
DEFAULT_SUITE = "bookworm"  # Debian 12: python3 is 3.11, like the Dockerfile's base
_STRIP = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/log",
)
_IMPORT_CHANGES = [
    "ENV PATH=/usr/local/bin:/usr/bin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV PYTHONDONTWRITEBYTECODE=1",
    "USER 65534:65534",
    "WORKDIR /tmp",
]


def build_instructions(tag: str = DEFAULT_IMAGE) -> str:
    return (
        f"Build it with `codegym sandbox build-image --tag {tag}` (pulls python:3.11-slim) or, with no image "
        f"registry, `codegym sandbox build-image --offline --tag {tag}` (as root; needs debootstrap), or use "
        "sandbox='local'."
    )


def image_exists(tag: str = DEFAULT_IMAGE) -> bool:
    from codegym.sandbox.docker_client import connect

    try:
        connect().images.get(tag)
    except Exception:
        return False
    return True


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses, so the offline build goes where apt already can."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["deb"]:
                url = next((w for w in words[1:] if "://" in w), None)
            elif words[:1] == ["URIs:"]:
                url = words[1] if len(words) > 1 else None
            else:
                continue
            if url and "security" not in url:
                return url
    return "http://deb.debian.org/debian"


def build_image(
    tag: str = DEFAULT_IMAGE,
    *,
    offline: bool = False,
    suite: str = DEFAULT_SUITE,
    mirror: str | None = None,
    log: Callable[[str], None] = print,
) -> str:
    """Build the sandbox image and return its tag.

    Args:
        tag: image name and tag.
        offline: debootstrap a Debian rootfs and ``docker import`` it instead of building the Dockerfile.
        suite: the Debian release for the offline build.
        mirror: the Debian mirror for the offline build (default: the one apt uses here).
        log: where progress lines go.
    """
    from codegym.sandbox.docker_client import connect

    client = connect()
    if not offline:
        log(f"building {tag} from {DOCKERFILE} (needs access to an image registry)")
        client.images.build(path=str(DOCKERFILE.parent), dockerfile=DOCKERFILE.name, tag=tag, rm=True)
        log(f"built {tag}")
        return tag
    if os.geteuid() != 0:
        raise PermissionError("the offline image build runs debootstrap, which needs root: run it with sudo")
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise FileNotFoundError("debootstrap is not installed: apt-get install -y debootstrap")
    mirror = mirror or debian_mirror()
    with tempfile.TemporaryDirectory(prefix="codegym-rootfs-") as scratch:
        rootfs = Path(scratch, "rootfs")
        log(f"debootstrap {suite} with python3 from {mirror} (about a minute)")
        command = [debootstrap, "--variant=minbase", "--include=python3", suite, str(rootfs), mirror]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"debootstrap failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        for relative in _STRIP:
            shutil.rmtree(rootfs / relative, ignore_errors=True)
        tarball = Path(scratch, "rootfs.tar")
        log("packing the root filesystem")
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], check=True)
        repository, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
        log(f"docker import as {tag}")
        client.api.import_image(src=str(tarball), repository=repository, tag=version, changes=_IMPORT_CHANGES)
    client.images.get(tag)  # proves the import landed under that name
    log(f"built {tag}")
    return tag
