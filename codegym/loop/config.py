"""The self-improvement loop's configuration: one TOML file, every default visible.

``codegym loop --print-config`` prints the defaults as TOML; edit and pass it back with ``--config``.
Each setting is a dataclass field with the string under it saying what it means; that string is the
TOML comment, and :mod:`codegym.options` reads it the same way for ``codegym loop``'s flags and the
benchmarks' arguments. The run directory keeps a copy (``config.toml``), and resuming a run with a different configuration is
refused (the message names the keys that differ).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from os import PathLike
from pathlib import Path
from typing import Any

from codegym.errors import MissingInputError, UserError
from codegym.options import field_docs


@dataclass
class TaskConfig:
    """Where the problems come from."""

    source: str = "synthetic"
    """"synthetic" (procedural; min_ops, max_ops and eval_ops apply) or "codeio" (CodeIO's real problems)"""
    train_tasks: int = 48
    """training-split tasks searched per iteration (new ones every iteration)"""
    min_ops: int = 1
    """fewest ops composed in a training task"""
    max_ops: int = 3
    """most ops composed in a training task"""
    eval_tasks: int = 100
    """held-out (test-split) tasks for the before/after evaluation (the same every time)"""
    eval_ops: int = 2
    """ops composed in the evaluation tasks (the tiny policy solves about 18% of k=2 greedily)"""
    train_split: str = "train"
    """split of the training tasks (TCG, search, RL): "train", or "test" to search held-out compositions that no reference episode covers (synthetic only; eval_ops then outside min_ops..max_ops, so the evaluation's compositions stay unseen)"""


@dataclass
class TCGConfig:
    """Stage 1: test case generation, validated against the reference solutions."""

    generator: str = "oracle"
    """"oracle" (inputs from signatures and examples, outputs from the reference), "tiny", or a model path"""
    tests_per_task: int = 10
    """visible tests kept per task"""


@dataclass
class SearchConfig:
    """Stage 2 (and 6, from the next iteration on): reasoning data from MCTS."""

    simulations: int = 6
    """MCTS simulations per task"""
    expansions: int = 3
    """candidate steps per expansion (O1-Coder: 3)"""
    selection: str = "uct"
    """"uct" (O1-Coder, c = 2.0) or "puct" (priors from the policy's log-probs)"""
    evaluation: str = "rollout"
    """leaf evaluation: "rollout", "prm" or "mix\""""
    temperature: float = 1.0
    """sampling temperature of the expansions"""
    batch_size: int = 0
    """tasks searched together, the unit of work a Ray worker takes (0: all at once; needed with ray_address)"""


@dataclass
class SFTConfig:
    """Stage 3: supervised fine-tuning of the policy on the paths whose code passed every test."""

    epochs: float = 3.0
    """passes over the solved paths (and the replayed episodes)"""
    learning_rate: float = 3e-4
    """peak learning rate"""
    batch_size: int = 8
    """episodes per optimizer step"""
    replay: int = 1000
    """reference episodes of fresh training-split synthetic tasks mixed in (0: none); real datasets have no reference reasoning: set 0"""
    accumulate: bool = False
    """train on the solved paths of every iteration so far, deduplicated, not only this one's"""
    from_start: bool = False
    """fine-tune the loop's starting policy afresh each iteration, not the current one (STaR's restart; use
    with accumulate, so that the paths of earlier iterations stay in the data)"""
    solved_paths: bool = True
    """train on the search's solved paths (false: on the replay alone, a control for what the paths add)"""


@dataclass
class PRMConfig:
    """Stage 4: the process reward model, trained on the step values of the trees."""

    labels: str = "hard"
    """"hard" (a path through the step passed every test) or "soft" (the node's mean value)"""
    objective: str = "pointwise"
    """"pointwise" or "pairwise" (Bradley-Terry on sibling steps)"""
    epochs: int = 1
    """passes over the tree rows"""
    learning_rate: float = 1e-4
    """AdamW's peak learning rate"""
    replay: int = 400
    """training-split synthetic tasks labelled by execution (the starting PRM's data) mixed in (0: trees only)"""
    balance: bool = True
    """train on as many good tree rows as bad, among code steps and among reasoning steps (false: every
    row; the trees are mostly failed deep nodes, and unbalanced they lower the PRM's held-out AUC)"""


@dataclass
class RLConfig:
    """Stage 5: policy gradient in the env with process (PRM) and outcome rewards."""

    iterations: int = 4
    """policy-gradient iterations (0 skips the stage)"""
    tasks_per_iteration: int = 8
    """training tasks per iteration"""
    group_size: int = 4
    """episodes per task (the GRPO group)"""
    reward: str = "o1coder"
    """the env's reward scheme: "o1coder", "dense", "potential", "terminal" or "gated\""""
    advantage: str = "grpo"
    """"grpo" (group-relative) or "reinforce" (running-mean baseline)"""
    learning_rate: float = 1e-5
    """AdamW's learning rate"""
    kl_coef: float = 0.1
    """weight of the KL penalty towards the policy the stage starts from (0: none)"""
    replay: int = 0
    """reference episodes of training-split synthetic tasks whose log-likelihood joins each update (InstructGPT's PPO-ptx; 0: none); real datasets have no reference reasoning: set 0"""
    replay_coef: float = 1.0
    """weight of the replay's log-likelihood beside the policy-gradient term"""


@dataclass
class EvalConfig:
    """The before/after evaluation on held-out tasks: pass@1 of greedy, best-of-N and MCTS."""

    best_of_n: int = 4
    """N for best-of-N (verifier: the generated visible tests)"""
    mcts_simulations: int = 4
    """MCTS simulations per task"""
    search_tasks: int = 0
    """evaluation tasks given to best-of-N and MCTS: the first this many (0: all; greedy always gets all)"""
    batch_size: int = 0
    """tasks solved together, the unit of work a Ray worker takes (0: all at once; needed with ray_address)"""


@dataclass
class LoopConfig:
    """The whole loop. Sections: [tasks], [tcg], [search], [sft], [prm], [rl], [eval]."""

    iterations: int = 1
    """loop iterations"""
    policy: str = "tiny"
    """the starting policy: "tiny", a local path or a hub id"""
    prm: str = "tiny"
    """the starting process reward model: "tiny", a local path or a hub id"""
    protocol: str = ""
    """how the policy is prompted and trained: "native", "think", "direct" ("": the model's own)"""
    device: str = ""
    """where models run, e.g. "cpu", "cuda" ("": cuda when available, else cpu)"""
    dtype: str = "float32"
    """the policy's weights dtype: "float32" (a CPU), "bfloat16" (a GPU)"""
    lora_r: int = 0
    """train the policy (SFT, RL) as a LoRA adapter of this rank (0: every weight)"""
    sandbox: str = "auto"
    """"auto", "local", "docker" or "ray\""""
    ray_address: str = ""
    """a Ray cluster ("auto", "local", "host:6379") for the search and eval stages, in batch_size batches; "": no"""
    seed: int = 0
    """seeds task draws, search, training and evaluation"""
    max_steps: int = 6
    """steps per episode, the code step included"""
    check_tasks: int = 100
    """validation tasks (held-out kind, none evaluated) where SFT and RL are checked by greedy pass (0: none)"""
    rollback: bool = True
    """a stage scoring worse than its input on its check (PRM: held-out AUC) is reported and not used"""
    tasks: TaskConfig = field(default_factory=TaskConfig)
    tcg: TCGConfig = field(default_factory=TCGConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    prm_training: PRMConfig = field(default_factory=PRMConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        from codegym.rewards.schemes import SCHEMES

        checks = [
            ("iterations", self.iterations >= 1),
            ("max_steps", self.max_steps >= 2),
            ("tasks.train_tasks", self.tasks.train_tasks >= 1),
            ("tasks.eval_tasks", self.tasks.eval_tasks >= 1),
            ("tasks.min_ops <= tasks.max_ops", 1 <= self.tasks.min_ops <= self.tasks.max_ops),
            ("tcg.tests_per_task", self.tcg.tests_per_task >= 1),
            ("search.simulations", self.search.simulations >= 1),
            ("search.expansions", self.search.expansions >= 1),
            ("search.selection", self.search.selection in ("uct", "puct")),
            ("search.evaluation", self.search.evaluation in ("rollout", "prm", "mix")),
            ("prm_training.labels", self.prm_training.labels in ("hard", "soft")),
            ("prm_training.objective", self.prm_training.objective in ("pointwise", "pairwise")),
            ("rl.iterations", self.rl.iterations >= 0),
            ("rl.advantage", self.rl.advantage in ("grpo", "reinforce")),
            ("rl.reward", self.rl.reward in SCHEMES),
            ("sft.replay", self.sft.replay >= 0),
            ("sft: solved_paths or replay", self.sft.solved_paths or self.sft.replay > 0),
            ("prm_training.replay", self.prm_training.replay >= 0),
            ("rl.kl_coef", self.rl.kl_coef >= 0),
            ("rl.replay", self.rl.replay >= 0),
            ("rl.replay_coef", self.rl.replay_coef >= 0),
            ("check_tasks", self.check_tasks >= 0),
            ("eval.best_of_n", self.eval.best_of_n >= 1),
            ("eval.mcts_simulations", self.eval.mcts_simulations >= 1),
            ("eval.search_tasks", self.eval.search_tasks >= 0),
            ("search.batch_size >= 0", self.search.batch_size >= 0),
            ("eval.batch_size >= 0", self.eval.batch_size >= 0),
            ("protocol", self.protocol in ("", "native", "think", "direct")),
            ("tasks.source", self.tasks.source in ("synthetic", "codeio")),
            ("tasks.train_split", self.tasks.train_split in ("train", "test")),
            ("dtype", self.dtype in ("float32", "bfloat16", "float16")),
            ("lora_r", self.lora_r >= 0),
        ]
        bad = [name for name, ok in checks if not ok]
        if self.ray_address and not (self.search.batch_size and self.eval.batch_size):
            raise UserError(
                "ray_address spreads the search and eval stages over Ray workers in batches: set "
                "search.batch_size and eval.batch_size (e.g. 16); one process given the same batch sizes "
                "produces the same results"
            )
        if bad:
            raise UserError(
                f"bad loop configuration value(s): {', '.join(bad)}; see `codegym loop --print-config` "
                "for every key with its default and meaning"
            )
        tasks = self.tasks
        if tasks.train_split == "test" and (
            tasks.source != "synthetic" or tasks.min_ops <= tasks.eval_ops <= tasks.max_ops
        ):
            raise UserError(
                'tasks.train_split = "test" trains on held-out compositions: it needs tasks.source = '
                '"synthetic" and a tasks.eval_ops outside tasks.min_ops..tasks.max_ops (e.g. min_ops = '
                "max_ops = 3 with eval_ops = 2), or the evaluation would measure compositions trained on"
            )


def policy_options(config: LoopConfig) -> dict[str, Any]:
    """``load_policy`` options from the configuration's protocol, device and dtype."""
    options: dict[str, Any] = {}
    if config.protocol:
        options["protocol"] = config.protocol
    if config.device:
        options["device"] = config.device
    if config.dtype != "float32":
        options["dtype"] = config.dtype
    return options


SECTIONS = {
    "tasks": TaskConfig,
    "tcg": TCGConfig,
    "search": SearchConfig,
    "sft": SFTConfig,
    "prm_training": PRMConfig,
    "rl": RLConfig,
    "eval": EvalConfig,
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(config: LoopConfig) -> str:
    """The configuration as TOML, each key with its meaning as a comment above it."""
    lines = ["# codegym loop configuration (codegym loop --config FILE)", ""]

    def section(obj: Any, cls: type) -> None:
        docs = field_docs(cls)
        for item in fields(cls):
            if item.name in SECTIONS:
                continue
            lines.extend(f"# {line.strip()}" for line in docs.get(item.name, "").splitlines() or [""])
            lines.append(f"{item.name} = {_toml_value(getattr(obj, item.name))}")

    section(config, LoopConfig)
    for name, cls in SECTIONS.items():
        lines.extend(["", f"[{name}]", f"# {cls.__doc__.strip()}"])
        section(getattr(config, name), cls)
    return "\n".join(lines) + "\n"


def from_dict(data: dict[str, Any]) -> LoopConfig:
    """A configuration from parsed TOML; unknown keys and wrong types are errors that name them."""
    top = {f.name for f in fields(LoopConfig)} - set(SECTIONS)
    unknown = sorted(set(data) - top - set(SECTIONS))
    if unknown:
        raise UserError(f"unknown loop configuration key(s) {unknown}; known: {sorted(top | set(SECTIONS))}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS:
            cls = SECTIONS[key]
            if not isinstance(value, dict):
                raise UserError(f"[{key}] must be a TOML table")
            known = {f.name: f for f in fields(cls)}
            extra = sorted(set(value) - set(known))
            if extra:
                raise UserError(f"unknown key(s) {extra} in [{key}]; known: {sorted(known)}")
            kwargs[key] = cls(**{k: _checked(f"{key}.{k}", known[k], v, cls) for k, v in value.items()})
        else:
            kwargs[key] = _checked(
                key, next(f for f in fields(LoopConfig) if f.name == key), value, LoopConfig
            )
    return LoopConfig(**kwargs)


def _checked(name: str, item: dataclasses.Field, value: Any, cls: type) -> Any:
    default = item.default if item.default is not dataclasses.MISSING else None
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if default is not None and type(value) is not type(default):
        raise UserError(f"{name} must be of type {type(default).__name__}, got {value!r}")
    return value


def load_config(path: str | PathLike[str] | None = None, **overrides: Any) -> LoopConfig:
    """The defaults, or the TOML file at ``path``; ``overrides`` replace top-level keys (e.g. iterations)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise MissingInputError(
                f"no loop configuration at {path}; write one with `codegym loop --print-config`"
            )
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{path} is not valid TOML: {exc}") from None
    data.update({key: value for key, value in overrides.items() if value is not None})
    return from_dict(data)


def differences(a: LoopConfig, b: LoopConfig) -> list[str]:
    """The dotted keys whose values differ between two configurations."""
    left, right = dataclasses.asdict(a), dataclasses.asdict(b)
    out = []
    for key in left:
        if isinstance(left[key], dict):
            out += [f"{key}.{k}" for k in left[key] if left[key][k] != right[key][k]]
        elif left[key] != right[key]:
            out.append(key)
    return out
