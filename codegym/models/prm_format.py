"""How a process reward model reads a path, and what it saves beside its weights.

:class:`PRMFormat` is the head, the step tag, the LM head's tokens, the calibration and the prompt
protocol, saved as ``prm_config.json`` next to a transformers model; :class:`ScoringWindow` is one model
input with the token spans whose values are steps' scores. Both are plain data (no torch), shared by
scoring (:mod:`codegym.models.hf_prm`), calibration (:mod:`codegym.models.prm_calibration`) and
training (:mod:`codegym.training.prm`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path

from codegym.errors import UserError

HEADS = ("lm", "classifier", "likelihood")
TAG_HEADS = ("lm", "classifier")  # the heads that read a step tag
DEFAULT_STEP_TAG = "<|step_tag|>"
PRM_CONFIG_NAME = "prm_config.json"
# When neither the tokenizer nor the model config gives a usable context length.
FALLBACK_MAX_LENGTH = 2048


@dataclass(frozen=True)
class PRMFormat:
    """How a PRM reads a path: its head, the tag after each step, the LM head's tokens, the calibration.

    Attributes:
        head: ``"lm"``, ``"classifier"`` or ``"likelihood"`` (see the module docstring).
        step_tag: the text after each step, for the tag heads; the score is read at its last token. Our
            training adds it to the tokenizer as one special token when it is not a single token already.
        good_token: the LM head's "good" token (one token of the vocabulary).
        bad_token: the LM head's "bad" token.
        scale: the score is ``sigmoid(scale * raw + bias)``.
        bias: see ``scale``.
        protocol: the prompt protocol the path is laid out in (:mod:`codegym.models.protocol`):
            ``native`` (the env's text) or a chat protocol (``think``: the policy's own chat form, so a
            PRM reads steps as the policy wrote them).
    """

    head: str = "lm"
    step_tag: str = DEFAULT_STEP_TAG
    good_token: str = "+"
    bad_token: str = "-"
    scale: float = 1.0
    bias: float = 0.0
    protocol: str = "native"

    def __post_init__(self) -> None:
        if self.protocol not in ("native", "think", "direct"):
            raise UserError(f"protocol must be native, think or direct, got {self.protocol!r}")
        if self.head not in HEADS:
            raise UserError(f"head must be one of {HEADS}, got {self.head!r}")
        for name in ("step_tag", "good_token", "bad_token"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise UserError(f"{name} must be a non-empty string, got {value!r}")
        if self.good_token == self.bad_token:
            raise UserError(f"good_token and bad_token must differ, both are {self.good_token!r}")
        for name in ("scale", "bias"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise UserError(f"{name} must be a finite number, got {value!r}")

    @property
    def uses_tag(self) -> bool:
        return self.head in TAG_HEADS

    @classmethod
    def read(cls, folder: str | PathLike[str]) -> PRMFormat | None:
        """The format saved in ``folder``, or None when the folder has no :data:`PRM_CONFIG_NAME`."""
        path = Path(folder) / PRM_CONFIG_NAME
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))

    def write(self, folder: str | PathLike[str]) -> None:
        (Path(folder) / PRM_CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n")


@dataclass(frozen=True)
class ScoringWindow:
    """One model input: token ids, and which tokens give the scores of some steps.

    Attributes:
        input_ids: the tokens (special prefix tokens such as BOS included), at most ``max_length``.
        read_spans: for each scored step, the token range ``[start, end)`` its head reads: the tag's
            last token for the tag heads, the step's own tokens for the likelihood head.
        step_indices: which steps of the path (0-based) those spans belong to, in the same order.
    """

    input_ids: tuple[int, ...]
    read_spans: tuple[tuple[int, int], ...]
    step_indices: tuple[int, ...]


__all__ = [
    "DEFAULT_STEP_TAG",
    "FALLBACK_MAX_LENGTH",
    "HEADS",
    "PRM_CONFIG_NAME",
    "PRMFormat",
    "ScoringWindow",
    "TAG_HEADS",
]
