"""Options and helpers shared by the commands: the sandbox, the task set, numbers, JSON output."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codegym.cli import UsageError
from codegym.options import json_object

if TYPE_CHECKING:
    from codegym.tasks import Task

SANDBOXES = ("local", "docker", "auto", "ray")  # codegym.sandbox.BACKENDS, without importing the sandbox here


# -- argparse types ----------------------------------------------------------------------------------


def int_at_least(low: int):
    """An argparse type: a whole number >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"int >= {low}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def int_list(text: str) -> list[int]:
    """An argparse type: comma-separated ints >= 1, such as ``1,2,4,8``."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers such as 1,2,4, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers >= 1 such as 1,2,4, got {text!r}"
        )
    return sorted(set(values))


# -- shared options ----------------------------------------------------------------------------------


def add_sandbox_option(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    parser.add_argument(
        "--sandbox",
        choices=SANDBOXES,
        default=default,
        help="where code runs: local (fork server on this machine), docker (container pool), auto "
        "(docker when the daemon and image are there, else local), or ray (actors over the Ray cluster at "
        "RAY_ADDRESS, or a Ray started here, each owning an auto sandbox on its node) (default: %(default)s)",
    )


def add_ray_options(parser: argparse.ArgumentParser, *, chunk_help: str | None = None) -> None:
    """``--ray-address``, ``--ray-workers`` and (with ``chunk_help``) ``--ray-chunk``: spread the tasks over a
    Ray cluster (``codegym.distributed``)."""
    group = parser.add_argument_group("Ray (spread the tasks over a cluster; pip install 'codegym[ray]')")
    group.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="play the tasks on Ray workers, each with its own policy replica and sandbox: 'auto' (the "
        "cluster this machine joined with `ray start`), 'local' (start Ray here), host:port or "
        "ray://host:10001 (default: one process, no Ray)",
    )
    group.add_argument(
        "--ray-workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="Ray workers (default: one per CPU of the cluster)",
    )
    if chunk_help:
        group.add_argument("--ray-chunk", type=positive_int, default=8, metavar="N", help=chunk_help)


def add_task_options(parser: argparse.ArgumentParser, *, endless_default: int) -> None:
    """``--tasks``, ``--split``, ``--task-options``, ``--task-id`` and ``--n-tasks``."""
    group = parser.add_argument_group("tasks")
    group.add_argument(
        "--tasks",
        default="synthetic",
        help="task source: synthetic, humaneval, codeio, jsonl:PATH or dataset:NAME_OR_PATH "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--split",
        default=None,
        help="the source's split (default: 'test' for synthetic and codeio, whose test splits hold "
        "compositions or problems never seen in training; the source's own default otherwise)",
    )
    group.add_argument(
        "--task-options",
        type=json_object,
        default={},
        metavar="JSON",
        help='options of the task source, as a JSON object, e.g. \'{"min_ops": 1, "max_ops": 2}\' '
        "for synthetic (default: none)",
    )
    choice = group.add_mutually_exclusive_group()
    choice.add_argument(
        "--task-id",
        nargs="+",
        default=None,
        metavar="ID",
        help="solve these tasks by id (e.g. HumanEval/0, or a synthetic id such as "
        "synthetic/test/sort>sum/3) instead of --n-tasks of them",
    )
    choice.add_argument(
        "--n-tasks",
        type=positive_int,
        default=None,
        metavar="N",
        help="how many tasks: the first N of a finite source, or N drawn with --seed from an endless one "
        f"such as synthetic (default: all of a finite source, {endless_default} of an endless one)",
    )
    parser.set_defaults(endless_default=endless_default)


def resolved_split(args: argparse.Namespace) -> str | None:
    """``--split``, defaulting to the held-out ``test`` split of the sources that have one (synthetic,
    codeio)."""
    return "test" if args.split is None and args.tasks in ("synthetic", "codeio") else args.split


def select_tasks(args: argparse.Namespace) -> list[Task]:
    """The tasks that ``add_task_options`` chose; a bad choice raises :class:`UsageError`."""
    from codegym.tasks import TaskList, load_tasks

    source = load_tasks(args.tasks, split=resolved_split(args), **args.task_options)
    if args.task_id:
        if len(set(args.task_id)) != len(args.task_id):
            raise UsageError("--task-id lists a task twice; give each id once")
        tasks = []
        for task_id in args.task_id:
            try:
                tasks.append(source.get(task_id))
            except KeyError as exc:
                reason = exc.args[0] if exc.args else task_id
                raise UsageError(f"--task-id {task_id!r} is not in --tasks {args.tasks}: {reason}") from None
        return tasks
    if isinstance(source, TaskList):
        return list(source)[: args.n_tasks]
    n = args.n_tasks or args.endless_default
    if hasattr(source, "tasks"):  # synthetic: a fixed, seeded list
        return list(source.tasks(n, seed=args.seed))
    import numpy as np

    rng = np.random.default_rng(args.seed)
    drawn: dict[str, Task] = {}
    for _ in range(100 * n):
        task = source.sample(rng)
        drawn.setdefault(task.task_id, task)
        if len(drawn) == n:
            break
    return list(drawn.values())


def add_seed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seeds the choice of tasks and all sampling: the same seed repeats a run (default: %(default)s)",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--protocol``, ``--device``, ``--dtype`` and ``--endpoint``: how a policy given by spec is loaded
    and prompted (:func:`model_options` turns them into ``load_policy`` options)."""
    group = parser.add_argument_group("model options")
    group.add_argument(
        "--protocol",
        choices=("native", "think", "direct"),
        default=None,
        help="how the policy is prompted: native (the env's text; the tiny model), think (outline, refine, "
        "code, for instruct models), direct (code at once) (default: the model's own: think for "
        "smollm2-135m-instruct and qwen2.5-coder-0.5b-instruct, the saved one for a model trained here, else native)",
    )
    group.add_argument(
        "--device",
        default=None,
        help="where a transformers model runs, e.g. cpu, cuda, cuda:1 (default: cuda when available, else cpu)",
    )
    group.add_argument(
        "--dtype",
        default=None,
        choices=("float32", "bfloat16", "float16"),
        help="a transformers model's weights dtype (default: float32; bfloat16 suits a GPU, never this CPU)",
    )
    group.add_argument(
        "--endpoint",
        default=None,
        choices=("completions", "chat/completions"),
        help="for openai:<url>/<model>: the server endpoint (default: completions)",
    )


def model_options(args: argparse.Namespace, spec: str) -> dict[str, Any]:
    """``load_policy`` options from :func:`add_model_options`'s flags, for the policy ``spec``."""
    options: dict[str, Any] = {}
    if getattr(args, "protocol", None):
        options["protocol"] = args.protocol
    if spec.startswith("openai:"):
        if getattr(args, "device", None) or getattr(args, "dtype", None):
            raise UsageError("--device and --dtype apply to a local model, not to openai:<url>/<model>")
        if getattr(args, "endpoint", None):
            options["endpoint"] = args.endpoint
        return options
    if getattr(args, "endpoint", None):
        raise UsageError("--endpoint applies to openai:<url>/<model> policies only")
    if getattr(args, "device", None):
        options["device"] = args.device
    if getattr(args, "dtype", None):
        options["dtype"] = args.dtype
    return options


def check_model_spec(flag: str, spec: str) -> None:
    """Refuse a model spec that names a local folder which is not there (transformers would read it as a
    malformed hub id and say so, which does not help)."""
    from codegym.models.builtin import BUILTIN_MODELS

    if spec == "tiny" or spec in BUILTIN_MODELS or spec.startswith("openai:"):
        return
    looks_local = spec.startswith(("/", ".", "~")) or spec.count("/") > 1
    if looks_local and not Path(spec).expanduser().exists():
        raise UsageError(
            f"{flag} {spec}: no such folder; pass tiny, the folder of a saved model, a built-in model, a hub id "
            "(namespace/name) or openai:<url>/<model>"
        )


# -- output ------------------------------------------------------------------------------------------


def safe_filename(text: str) -> str:
    """A task id as a file name: anything but letters, digits, ``.``, ``_`` and ``-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "task"


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return out


def write_json(path: str | Path, data: Any) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    return out


def batches(items: Sequence, size: int) -> list[Sequence]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def rate(count: float, total: int) -> str:
    """``"3/4 (75.0%)"``."""
    return f"{count}/{total} ({count / total:.1%})" if total else "0/0"
