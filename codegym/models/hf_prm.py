"""``HFProcessRewardModel``: a :class:`~codegym.rewards.ProcessRewardModel` backed by a transformers model.

The scoring format is the env's text (:func:`~codegym.steps.render_state`), or a chat protocol's form
(``protocol="think"``: the policy's own chat layout); the tag heads add a *step tag*
after each step::

    ### Problem
    Write a Python function ...

    ### Step 1
    Outline: ...<|step_tag|>

    ### Step 2
    Refine: ...<|step_tag|>

The model reads a whole path in one forward pass and gives each step a raw "good" value; the step's score
is ``sigmoid(scale * raw + bias)`` (``scale`` 1 and ``bias`` 0 unless calibrated). Three heads:

- ``"lm"``: a causal LM whose next token after the tag is ``"+"`` (good) or ``"-"`` (bad);
  ``raw = logit("+") - logit("-")``, i.e. P("+") with the two tokens renormalized. This is the format of
  Math-Shepherd and O1-Coder, so a hub PRM trained that way loads as it is (pass its own ``step_tag``),
  and any hub causal LM can be fine-tuned into one without a new head.
- ``"classifier"``: a two-class token-classification head (``AutoModelForTokenClassification`` with
  ``num_labels=2``) at the tag; ``raw = logit[good] - logit[bad]``.
- ``"likelihood"`` (the tiny PRM's default): no tag; ``raw`` is the mean log-probability the causal LM
  gives the step's own tokens after the problem and the steps before it, and ``scale`` and ``bias`` are
  fitted to step labels (Platt scaling) before the whole model is trained through them. Started from a
  trained policy it ranks steps well from the first update (a step the policy would not write is
  suspect), where a tag head has to learn that comparison from scratch; see ``benchmarks/studies/prm_auc.py``.
  Its known bias: short, generic steps are likely, so it can favour them over specific ones.

All heads need a causal backbone (checked at load), so step j's score depends only on the problem and
steps 1..j, as the protocol asks. A path longer than ``max_length`` tokens is cut on the left: each window
ends at a step's end and keeps the text just before it; the steps it cannot reach get windows of their own.
A saved PRM is a transformers folder plus ``prm_config.json`` (:class:`PRMFormat`), written by
:meth:`HFProcessRewardModel.save_pretrained`.

Example:
    >>> prm = load_prm("tiny")  # doctest: +SKIP
    >>> steps = ["Outline:\\n1. Return a + b.", "```python\\n...\\n```"]
    >>> prm.score("Add two numbers.", steps)  # doctest: +SKIP
    [0.91, 0.87]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codegym.errors import UserError
from codegym.models.prm_format import (
    FALLBACK_MAX_LENGTH,
    HEADS,
    PRMFormat,
    ScoringWindow,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


class HFProcessRewardModel:
    """A process reward model from the hub or a local folder, scoring every step of a path in one pass.

    See the module docstring for the format and the three heads.

    Args:
        model: a hub id, a local path, or a loaded ``PreTrainedModel`` (then pass ``tokenizer``).
        tokenizer: the tokenizer, when ``model`` is a loaded model; loaded from ``model`` otherwise.
        head: ``"lm"``, ``"classifier"`` or ``"likelihood"``; default: the saved ``prm_config.json``, else
            from the model's architecture (``...ForTokenClassification`` is ``"classifier"``, else ``"lm"``).
        step_tag: the tag after each step; default: the saved one, else :data:`DEFAULT_STEP_TAG`.
        good_token: the LM head's "good" token; default: the saved one, else ``"+"``.
        bad_token: the LM head's "bad" token; default: the saved one, else ``"-"``.
        device: where the model runs; default ``"cuda"`` when available, else ``"cpu"``.
        dtype: the weights' dtype when loading (a ``torch.dtype``, ``"auto"`` or a name).
        batch_size: windows per forward pass in :meth:`score_batch`.
        max_length: the longest window in tokens; default: the model's context length.
        trust_remote_code: passed to ``from_pretrained``; only for models whose code you trust.
        protocol: the prompt protocol paths are laid out in (``native``, ``think``, ``direct``); default
            the saved one, else ``native``. A chat protocol needs the tokenizer's chat template.

    Example:
        >>> prm = HFProcessRewardModel("path/to/prm")  # doctest: +SKIP
        >>> prm.score_batch([("Add two numbers.", ["Outline: return a + b"])])  # doctest: +SKIP
        [[0.73]]
    """

    def __init__(
        self,
        model: str | PathLike[str] | PreTrainedModel,
        *,
        tokenizer: PreTrainedTokenizerBase | None = None,
        head: str | None = None,
        step_tag: str | None = None,
        good_token: str | None = None,
        bad_token: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        batch_size: int = 16,
        max_length: int | None = None,
        trust_remote_code: bool = False,
        protocol: str | None = None,
    ) -> None:
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForTokenClassification,
            AutoTokenizer,
        )

        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise UserError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if head is not None and head not in HEADS:
            raise UserError(f"head must be one of {HEADS}, got {head!r}")
        if max_length is not None and not (isinstance(max_length, int) and max_length >= 1):
            raise UserError(f"max_length must be a positive int or None, got {max_length!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if isinstance(model, str | PathLike):
            saved = PRMFormat.read(model) if Path(model).is_dir() else None
            config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
            head = head or (saved.head if saved else _head_of(config.architectures))
            loader = AutoModelForTokenClassification if head == "classifier" else AutoModelForCausalLM
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(
                model, trust_remote_code=trust_remote_code
            )
            self.model = loader.from_pretrained(model, dtype=dtype, trust_remote_code=trust_remote_code)
        elif tokenizer is None:
            raise TypeError("pass tokenizer= with a loaded model (or pass a hub id or path instead)")
        else:
            saved = None
            self.model, self.tokenizer = model, tokenizer
            head = head or _head_of([type(model).__name__])
        overrides = {
            "step_tag": step_tag,
            "good_token": good_token,
            "bad_token": bad_token,
            "protocol": protocol,
        }
        self.format = replace(
            saved or PRMFormat(), head=head, **{k: v for k, v in overrides.items() if v is not None}
        )
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        # (scale, bias) as a tensor, so that training can fit them with the model.
        self.calibration = torch.nn.Parameter(
            torch.tensor([self.format.scale, self.format.bias], device=self.device),
            requires_grad=self.format.head == "likelihood",
        )

        self._check_model()
        self._prefix_ids = _special_prefix(self.tokenizer)
        self._tag_ids = self._token_ids(self.format.step_tag) if self.format.uses_tag else []
        if self.format.uses_tag and not self._tag_ids:
            raise UserError(f"the step tag {self.format.step_tag!r} encodes to no tokens; choose another")
        self.max_length = max_length or _context_length(self.model, self.tokenizer)
        if self.max_length < len(self._prefix_ids) + len(self._tag_ids) + 2:
            raise UserError(
                f"max_length={self.max_length} leaves no room for a step "
                f"({len(self._prefix_ids) + len(self._tag_ids)} tokens of specials and tag)"
            )
        if self.format.head == "lm":
            self._good_id = self._single_token(self.format.good_token, "good_token")
            self._bad_id = self._single_token(self.format.bad_token, "bad_token")
        self._check_causal()

    def __repr__(self) -> str:
        return (
            f"HFProcessRewardModel({self.model.name_or_path!r}, head={self.format.head!r}, "
            f"device={str(self.device)!r})"
        )

    # -- the ProcessRewardModel protocol -------------------------------------------------------------

    def score(self, problem: str, steps: Sequence[str]) -> list[float]:
        """P(step is good) for each step, given the problem and the steps before it."""
        return self.score_batch([(problem, steps)])[0]

    def score_batch(self, paths: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        """:meth:`score` for many ``(problem, steps)`` paths, batched ``batch_size`` windows at a time."""
        import torch

        windows = [(index, window) for index, path in enumerate(paths) for window in self.encode(*path)]
        scores: list[list[float]] = [[0.0] * len(steps) for _, steps in paths]
        # Windows of similar length share a batch, to pad less; results go back by (path, step).
        windows.sort(key=lambda item: len(item[1].input_ids))
        with torch.inference_mode():
            for start in range(0, len(windows), self.batch_size):
                batch = windows[start : start + self.batch_size]
                probabilities = torch.sigmoid(self.step_logits([window for _, window in batch]).float())
                flat = iter(probabilities.tolist())
                for index, window in batch:
                    for step_index in window.step_indices:
                        scores[index][step_index] = next(flat)
        return scores

    # -- encoding and the differentiable core (training uses these too) -----------------------------

    def encode(
        self, problem: str, steps: Sequence[str], step_indices: Sequence[int] | None = None
    ) -> list[ScoringWindow]:
        """The windows that score ``steps`` (all of them, or those in ``step_indices``).

        One window when the path fits in ``max_length`` tokens; otherwise each window ends where a step's
        read span ends and is cut on the left, keeping the tokens just before it (and the special prefix
        such as BOS). A step too long for a window on its own is read on its last tokens.

        Raises:
            TypeError: ``problem`` or a step is not a string.
            UserError: a text contains the step tag, a step is blank (likelihood head), or a step
                index is out of range.
        """
        if not isinstance(problem, str):
            raise TypeError(f"problem must be a string, got {type(problem).__name__}")
        if isinstance(steps, str):
            raise TypeError("steps must be a sequence of strings, got one string; wrap it in a list")
        steps = list(steps)
        for index, step in enumerate(steps):
            if not isinstance(step, str):
                raise TypeError(f"step {index} must be a string, got {type(step).__name__}")
        tag = self.format.step_tag
        texts = [("the problem", problem)] + [(f"step {i}", step) for i, step in enumerate(steps)]
        for where, text in texts if self.format.uses_tag else []:
            if tag in text:
                raise UserError(
                    f"{where} contains the step tag {tag!r}, which would be read as a step boundary; "
                    "remove it from the text"
                )
        wanted = sorted(set(range(len(steps)) if step_indices is None else step_indices))
        if wanted and not 0 <= wanted[0] <= wanted[-1] < len(steps):
            raise UserError(f"step_indices {list(step_indices or [])} out of range for {len(steps)} steps")
        if not wanted:
            return []

        # Headers and steps are tokenized apart and joined, so every span is exact whatever the tokenizer
        # would merge across a boundary (a byte-level BPE never merges across a newline anyway); training
        # and scoring share this. The headers are the protocol's: the env's, or the policy's chat form.
        from codegym.models.protocol import get_protocol

        template = getattr(self.tokenizer, "apply_chat_template", None)
        headers = get_protocol(self.format.protocol).step_headers(problem, len(steps), template)
        encoded = self.tokenizer(headers + [step.strip() for step in steps], add_special_tokens=False)
        header_ids, step_ids = encoded["input_ids"][: len(steps)], encoded["input_ids"][len(steps) :]
        ids: list[int] = []
        read: list[tuple[int, int]] = []  # the span each step's head reads
        need: list[int] = []  # the first token a window must hold to read that span
        for index, (header, step) in enumerate(zip(header_ids, step_ids, strict=True)):
            ids += header
            if self.format.uses_tag:
                ids += step
                need.append(len(ids))
                ids += self._tag_ids
                read.append((len(ids) - 1, len(ids)))
            else:
                if not step:
                    raise UserError(f"step {index} is blank; the likelihood head scores a step by its tokens")
                need.append(len(ids) - 1)  # the token before the step predicts its first token
                read.append((len(ids), len(ids) + len(step)))
                ids += step

        budget = self.max_length - len(self._prefix_ids)
        windows = []
        while wanted:
            end = read[wanted[-1]][1]
            start = max(0, end - budget)
            covered = [index for index in wanted if need[index] >= start] or [wanted[-1]]
            wanted = [index for index in wanted if index not in covered]
            offset = len(self._prefix_ids) - start
            spans = [(max(read[index][0], start + 1), read[index][1]) for index in covered]
            windows.append(
                ScoringWindow(
                    input_ids=tuple(self._prefix_ids + ids[start:end]),
                    read_spans=tuple((first + offset, last + offset) for first, last in spans),
                    step_indices=tuple(covered),
                )
            )
        return windows[::-1]

    def step_logits(self, windows: Sequence[ScoringWindow], *, calibrated: bool = True) -> torch.Tensor:
        """Each scored step's logit ``scale * raw + bias`` (or ``raw``), in order: a (N,) tensor.

        Differentiable: windows are right-padded into one batch and the model runs in whatever mode it is
        in (call ``model.train()`` to train; wrap in ``torch.inference_mode()`` to score).
        """
        import torch

        if not windows:
            return torch.zeros(0, device=self.device)
        longest = max(len(window.input_ids) for window in windows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(windows), longest), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(windows), longest), dtype=torch.long)
        for row, window in enumerate(windows):
            input_ids[row, : len(window.input_ids)] = torch.tensor(window.input_ids)
            attention_mask[row, : len(window.input_ids)] = 1
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        spans = [(row, span) for row, window in enumerate(windows) for span in window.read_spans]
        if self.format.head == "classifier":
            rows = torch.tensor([row for row, _ in spans], device=self.device)
            positions = torch.tensor([first for _, (first, _) in spans], device=self.device)
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, T, 2)
            picked = logits[rows, positions].float()  # (N, 2)
            raw = picked[:, 1] - picked[:, 0]
        else:
            # The LM head only where it is read: (B, T, V) logits would cost V / H times the hidden states.
            hidden = self.model.base_model(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            head = self.model.get_output_embeddings()
            if self.format.head == "lm":
                rows = torch.tensor([row for row, _ in spans], device=self.device)
                positions = torch.tensor([first for _, (first, _) in spans], device=self.device)
                logits = head(hidden[rows, positions]).float()  # (N, V)
                raw = logits[:, self._good_id] - logits[:, self._bad_id]
            else:
                raw = self._mean_logprobs(hidden, head, input_ids, spans)
        if not calibrated:
            return raw
        return self.calibration[0] * raw + self.calibration[1]

    def _mean_logprobs(
        self,
        hidden: torch.Tensor,
        head: torch.nn.Module,
        input_ids: torch.Tensor,
        spans: list[tuple[int, tuple[int, int]]],
    ) -> torch.Tensor:
        """The mean log-probability of each span's tokens, each predicted from the position before it."""
        import torch

        rows, positions, owners = [], [], []
        for owner, (row, (first, last)) in enumerate(spans):
            rows += [row] * (last - first)
            positions += range(first - 1, last - 1)
            owners += [owner] * (last - first)
        rows_t = torch.tensor(rows, device=self.device)
        positions_t = torch.tensor(positions, device=self.device)
        owners_t = torch.tensor(owners, device=self.device)
        logprobs = torch.log_softmax(head(hidden[rows_t, positions_t]).float(), dim=-1)  # (M, V)
        targets = input_ids[rows_t, positions_t + 1]  # (M,)
        token_logprobs = logprobs.gather(1, targets[:, None]).squeeze(1)  # (M,)
        totals = torch.zeros(len(spans), device=self.device).index_add(0, owners_t, token_logprobs)
        counts = torch.tensor([last - first for _, (first, last) in spans], device=self.device)
        return totals / counts

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The model's parameters, and ``(scale, bias)`` for the likelihood head (whose raw value has no
        free offset of its own)."""
        calibration = [self.calibration] if self.format.head == "likelihood" else []
        return [*(p for p in self.model.parameters() if p.requires_grad), *calibration]

    def save_pretrained(self, out_dir: str | PathLike[str]) -> Path:
        """Save the model, the tokenizer and ``prm_config.json`` into ``out_dir``; returns it as a Path."""
        out_path = Path(out_dir)
        out_path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out_path)
        self.tokenizer.save_pretrained(out_path)
        scale, bias = (float(value) for value in self.calibration.detach().cpu())
        self.format = replace(self.format, scale=scale, bias=bias)
        self.format.write(out_path)
        return out_path

    # -- checks --------------------------------------------------------------------------------------

    def _token_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _single_token(self, text: str, name: str) -> int:
        ids = self._token_ids(text)
        if len(ids) != 1:
            raise UserError(
                f"{name} {text!r} is {len(ids)} tokens for this tokenizer; the LM head needs one token each "
                "(pass good_token=/bad_token= that the vocabulary holds, or use head='classifier')"
            )
        return ids[0]

    def _check_model(self) -> None:
        if self.format.head == "classifier":
            labels = getattr(self.model.config, "num_labels", None)
            if labels != 2:
                raise UserError(
                    f"the classifier head needs a two-class token-classification model, this one has "
                    f"num_labels={labels}; load it with AutoModelForTokenClassification(num_labels=2)"
                )
        elif self.model.get_output_embeddings() is None:
            raise UserError(
                f"head={self.format.head!r} needs a causal LM with an output embedding; "
                f"{type(self.model).__name__} has none "
                "(use head='classifier' for a token-classification model)"
            )

    def _check_causal(self) -> None:
        """Step j's score may depend only on steps 1..j, so no position may see a later one.

        The test is structural, not numeric: the gradient of a position's last hidden state with respect to
        the input embeddings after it is exactly zero in a causal model (masked attention weights are
        exact zeros), and nonzero in a bidirectional one, however small its weights.
        """
        import torch

        probe = (
            self._prefix_ids + self._token_ids("### Problem\nx") + self._tag_ids + self._token_ids(" y z")
        )[:16]
        position = len(probe) // 2
        embeddings = self.model.get_input_embeddings()(torch.tensor([probe], device=self.device))
        embeddings = embeddings.detach().requires_grad_(True)
        with torch.enable_grad():
            hidden = self.model(inputs_embeds=embeddings, output_hidden_states=True).hidden_states[-1]
            # A fixed uneven projection: the plain sum of a layer-normed vector has a zero gradient.
            weights = torch.linspace(-1.0, 2.0, hidden.shape[-1], device=self.device)
            (gradient,) = torch.autograd.grad((hidden[0, position].float() * weights).sum(), embeddings)
        if gradient[0, position + 1 :].abs().max().item() != 0.0:
            raise UserError(
                f"{type(self.model).__name__} attends to later tokens, so a step's score would depend on the "
                "steps after it; a PRM needs a causal (decoder-only) backbone"
            )


def _head_of(architectures: Sequence[str] | None) -> str:
    names = list(architectures or [])
    return "classifier" if any(name.endswith("ForTokenClassification") for name in names) else "lm"


def _special_prefix(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokens the tokenizer puts before a text (BOS for Llama-style tokenizers, none for others)."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x", add_special_tokens=True)["input_ids"]
    # Only a pure prefix is kept; a tokenizer that appends specials (EOS) gets none, as at a step's end
    # they would sit mid-sequence.
    return list(full[: len(full) - len(plain)]) if full[len(full) - len(plain) :] == plain else []


def _context_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    candidates = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    usable = [int(value) for value in candidates if isinstance(value, int) and 0 < value < 1_000_000]
    return min(usable) if usable else FALLBACK_MAX_LENGTH


def load_prm(spec: str, **options: Any) -> HFProcessRewardModel:
    """A process reward model from a spec; ``options`` go to :class:`HFProcessRewardModel`.

    - ``"tiny"``: the built-in trained tiny PRM (``codegym/models/checkpoints/tiny-prm``; rebuild it
      with ``codegym train prm``).
    - ``"smollm2-135m-instruct"``: the built-in real pretrained model (:mod:`codegym.models.builtin`), as
      a starting point to train (``codegym train prm --base smollm2-135m-instruct``).
    - anything else: a local folder (one saved by ``codegym train prm`` carries its ``prm_config.json``)
      or a hub id (pass ``step_tag=``, ``good_token=``, ``bad_token=`` to match how it was trained).

    Raises:
        TypeError: ``spec`` is not a non-empty string.
        FileNotFoundError: ``"tiny"`` and the checkpoint is missing (the message says how to build it).
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"a PRM spec is a non-empty string ('tiny', a path or a hub id), got {spec!r}")
    from codegym.options import check_keywords

    check_keywords(HFProcessRewardModel, options, f"PRM {spec!r}", taken=("model",))
    if spec == "tiny":
        from codegym.models.tiny import tiny_checkpoint

        return HFProcessRewardModel(tiny_checkpoint("prm"), **options)
    from codegym.models.builtin import BUILTIN_MODELS, builtin_model_dir

    if spec in BUILTIN_MODELS:
        # An untrained starting point: its likelihood head reads the model's own "+"/"-" guesses.
        options.setdefault("protocol", "think")  # it reads paths in the form the policy writes them
        return HFProcessRewardModel(builtin_model_dir(spec), **options)
    return HFProcessRewardModel(spec, **options)
