"""Parity: a real model's greedy ``direct`` episodes through the env against the same model prompted
outside it, on HumanEval, judged by the same hidden tests.

Two arms, same model weights, greedy, the same ``--max-new-tokens``:

- ``env``: :func:`codegym.evaluation.rollout` with the ``direct`` protocol (the env's prompt, the
  policy's batched decoding, the env's code extraction and program assembly, its hidden tests).
- ``plain``: no CodeGym prompt or decoding. The HumanEval prompt goes into the model's own chat template
  as one user message with a standard instruction (``PLAIN_INSTRUCTION``, no env wording), transformers'
  ``model.generate`` decodes it (greedy, left-padded batches of ``--plain-batch`` prompts, stopping at
  the end-of-sequence token only), and the code is taken the usual way: the first fenced block (any
  language tag; a block cut by the token limit runs to the end), else the whole reply.

Both arms' programs are built the same way (:func:`codegym.verdicts.build_program`: code defining the
entry point gets the prompt's imports, a bare body is read as a completion of the prompt) and run in the
local sandbox on the task's hidden tests (HumanEval's ``check`` converted to one test per assertion) and,
as a second judge, on HumanEval's own unconverted ``check`` program. Per-task results, code included,
go to the JSON, with the tasks where the arms differ.

Run it (about 15 minutes per SmolLM2 arm on 164 tasks on a shared 2-core machine):
    .venv/bin/python benchmarks/studies/env_parity.py --model smollm2-135m-instruct --tasks 164
    .venv/bin/python benchmarks/studies/env_parity.py --model qwen2.5-coder-0.5b-instruct --tasks 20 \\
        --out benchmarks/results/env_parity_qwen_20.json
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from codegym.agents import rollout
from codegym.models import load_policy
from codegym.options import parse_args
from codegym.sandbox import make_sandbox
from codegym.tasks import load_tasks
from codegym.tasks.humaneval import check_program_test
from codegym.verdicts import build_program

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine

PLAIN_INSTRUCTION = (
    "Complete the following Python function. Answer with one ```python block holding the complete function."
)
# The first fenced block, any language tag; an unclosed one runs to the end of the reply.
_FENCED = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\r?\n(.*?)(?:```|\Z)", re.DOTALL)


@dataclass
class Args:
    model: str = "smollm2-135m-instruct"
    """the policy spec (a built-in name or a path of a model with a chat template)"""
    tasks: int = 164
    """how many HumanEval problems, from --first on"""
    first: int = 0
    """the index of the first problem"""
    arms: str = "env,plain"
    """which arms to run, comma-separated: env, plain"""
    max_new_tokens: int = 256
    """the token cap of both arms"""
    batch_size: int = 32
    """the env arm's policy batch (rows decoded together)"""
    plain_batch: int = 16
    """prompts per model.generate call in the plain arm (sorted by length, left-padded)"""
    timeout_s: float = 3.0
    """per-test time limit in the sandbox (the env's default)"""
    threads: int = 1
    """torch threads"""
    reuse: str = ""
    """an earlier result of this script (same model, tasks and token cap) whose arms not run now are kept:
    the plain arm does not depend on CodeGym, so a change to the env reruns --arms env alone"""
    out: str = "benchmarks/results/env_parity_smollm2_164.json"
    """where to write the JSON results"""


def plain_code(reply: str) -> str:
    """The code of a plain reply: the first fenced block, else the whole reply."""
    match = _FENCED.search(reply)
    return match.group(1) if match else reply


def judge(box, task, code: str | None, timeout_s: float) -> dict:
    """``code`` on the task's hidden tests and on HumanEval's own check program."""
    if code is None:
        return {"passed": False, "passed_check": False, "program_source": None}
    program, source = build_program(task, code)
    hidden = box.run(program, list(task.hidden_tests), timeout_s=timeout_s)
    check = box.run(program, [check_program_test(task)], timeout_s=timeout_s)
    return {"passed": hidden.all_passed, "passed_check": check.all_passed, "program_source": source}


def env_arm(tasks, box, args: Args) -> dict:
    policy = load_policy(args.model, protocol="direct", batch_size=args.batch_size)
    start = time.perf_counter()
    episodes = rollout(
        policy,
        tasks,
        samples_per_task=1,
        temperature=0.0,
        seed=0,
        max_steps=4,
        max_new_tokens=args.max_new_tokens,
        sandbox=box,
        timeout_s=args.timeout_s,
    )
    seconds = time.perf_counter() - start
    by_id = {task.task_id: task for task in tasks}
    per_task = {}
    for episode in episodes:
        # Re-judged here exactly as the plain arm is; the env's own verdict is kept beside it.
        verdict = judge(box, by_id[episode.task_id], episode.code, args.timeout_s)
        per_task[episode.task_id] = {
            **verdict,
            "env_verdict": episode.hidden_all_passed,
            "tokens": episode.spend.tokens,
            "steps": len(episode.steps),
            "end": episode.end,
            "code": episode.code,
            "fence_closed": episode.steps[-1].rstrip().endswith("```") if episode.steps else False,
        }
    return {"seconds": round(seconds, 1), "per_task": per_task}


def plain_arm(tasks, box, args: Args) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codegym.models.builtin import BUILTIN_MODELS, builtin_model_dir

    folder = builtin_model_dir(args.model) if args.model in BUILTIN_MODELS else args.model
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": f"{PLAIN_INSTRUCTION}\n\n```python\n{task.problem}```"}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for task in tasks
    ]
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    order = sorted(range(len(tasks)), key=lambda i: lengths[i])
    replies: dict[int, tuple[str, int, bool]] = {}
    start = time.perf_counter()
    for offset in range(0, len(order), args.plain_batch):
        batch = order[offset : offset + args.plain_batch]
        inputs = tokenizer(
            [texts[i] for i in batch],
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=False,
        )
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=args.max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
            )
        eos = model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos])
        for i, row in zip(batch, output[:, inputs["input_ids"].shape[1] :].tolist(), strict=True):
            end = next((k for k, token in enumerate(row) if token in eos), None)
            kept = row if end is None else row[:end]
            replies[i] = (tokenizer.decode(kept, skip_special_tokens=True), len(kept), end is not None)
        print(f"[{time.strftime('%H:%M:%S')}]   plain {offset + len(batch)}/{len(order)}", file=sys.stderr)
    seconds = time.perf_counter() - start
    per_task = {}
    for i, task in enumerate(tasks):
        reply, tokens, ended = replies[i]
        code = plain_code(reply)
        per_task[task.task_id] = {
            **judge(box, task, code, args.timeout_s),
            "tokens": tokens,
            "ended_by_eos": ended,
            "code": code,
            "reply": reply,
        }
    return {"seconds": round(seconds, 1), "instruction": PLAIN_INSTRUCTION, "per_task": per_task}


def summarize(run: dict) -> dict:
    per_task = run["per_task"]
    count = len(per_task)
    return {
        "passed": sum(r["passed"] for r in per_task.values()),
        "passed_check": sum(r["passed_check"] for r in per_task.values()),
        "tasks": count,
        "pass_at_1": sum(r["passed"] for r in per_task.values()) / count,
        "tokens_per_task": sum(r["tokens"] for r in per_task.values()) / count,
        "seconds": run["seconds"],
        "solved": sorted((t for t, r in per_task.items() if r["passed"]), key=lambda t: int(t.split("/")[1])),
        "env_verdict_disagrees": sorted(
            t for t, r in per_task.items() if "env_verdict" in r and r["env_verdict"] != r["passed"]
        ),
    }


def main() -> None:
    args = parse_args(Args, __doc__)
    torch.set_num_threads(args.threads)
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    unknown = sorted(set(arms) - {"env", "plain"})
    if unknown:
        raise SystemExit(f"unknown arms {unknown}; choose from env, plain")
    tasks = list(load_tasks("humaneval"))[args.first : args.first + args.tasks]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    results: dict = {
        "args": asdict(args),
        "commit": commit,
        "judged_by": "hidden tests (HumanEval's check converted per assertion), local sandbox; "
        "passed_check: HumanEval's own check program",
        "machine": machine(),
        "arms": {},
    }
    if args.reuse:
        earlier = json.loads(Path(args.reuse).read_text())
        same = ("model", "tasks", "first", "max_new_tokens", "timeout_s")
        differing = [key for key in same if earlier["args"].get(key) != getattr(args, key)]
        if differing:
            raise SystemExit(f"{args.reuse} ran with other {', '.join(differing)}; rerun every arm instead")
        for arm, run in earlier["arms"].items():
            if arm not in arms:
                results["arms"][arm] = run
                results.setdefault("reused", {})[arm] = {"from": args.reuse, "commit": earlier.get("commit")}
    started = time.perf_counter()
    with make_sandbox("local") as box:
        for arm in arms:
            print(f"[{time.strftime('%H:%M:%S')}] {arm} on {len(tasks)} tasks", file=sys.stderr)
            run = env_arm(tasks, box, args) if arm == "env" else plain_arm(tasks, box, args)
            results["arms"][arm] = {"summary": summarize(run), **run}
            print(
                f"  {json.dumps({k: v for k, v in summarize(run).items() if k != 'solved'})}", file=sys.stderr
            )
            if {"env", "plain"} <= set(results["arms"]):
                env, plain = (set(results["arms"][a]["summary"]["solved"]) for a in ("env", "plain"))
                results["differ"] = {"env_only": sorted(env - plain), "plain_only": sorted(plain - env)}
            results["seconds"] = round(time.perf_counter() - started, 1)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "arms"}, indent=2))
    for arm, run in results["arms"].items():
        print(arm, json.dumps(run["summary"]))


if __name__ == "__main__":
    main()
