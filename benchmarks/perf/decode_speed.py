"""Real-model decoding speed: the project's policy beside plain ``model.generate``, same model, same prompts.

Both arms decode greedily the same HumanEval prompts, on the same model object:

- ``policy``: ``HFPolicy.sample`` with the ``direct`` protocol, called with the env's own prompt for step 1
  (``policy_prompt(render_state(problem, []), 0)``): the call a greedy ``direct`` episode makes.
- ``generate``: transformers' ``model.generate`` on the same rendered text (the protocol's chat template,
  the same token ids), ``do_sample=False``, the same ``max_new_tokens``, the same end-of-sequence tokens
  and the protocol's stop strings (``stop_strings=``), so both arms stop where the env's step stops.

Two shapes: ``single`` (one prompt per call, both arms batch 1) and ``batch`` (all prompts in one call:
the policy's batch is ``--prompts`` rows, as the env sends a whole depth at once; ``generate`` gets the
same rows left-padded). Repeats are interleaved (policy, generate, then generate, policy, ...), after one
short untimed warm-up call of each. tokens/s counts the tokens each arm decoded (end-of-sequence and stop
tokens included, padding after a finished row excluded) over its wall time, and over its CPU time (the
process's, one torch thread: less moved by other jobs on shared cores than wall time). Token identity compares the
policy's decoded tokens with ``generate``'s new tokens, per prompt.

Run it (a few minutes for SmolLM2, about 20 for Qwen on one shared core):
    .venv/bin/python benchmarks/perf/decode_speed.py --models smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
import torch

import codegym.models.decoding as decoding
from codegym.models import load_policy
from codegym.options import parse_args
from codegym.steps import policy_prompt, render_state
from codegym.tasks import load_tasks

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for harness
from harness import machine


@dataclass
class Args:
    models: str = "smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct"
    """comma-separated built-in model names (or any policy spec with a chat template)"""
    prompts: int = 8
    """how many HumanEval prompts, from the first"""
    repeats: int = 3
    """timed repeats of each arm (interleaved)"""
    max_new_tokens: int = 256
    """the token cap of both arms"""
    shapes: str = "single,batch"
    """which call shapes to time: single (batch 1, one call per prompt), batch (all prompts in one call)"""
    threads: int = 1
    """torch threads"""
    merge: str = ""
    """instead of measuring: comma-separated result files (one model each, say) to join into --out"""
    out: str = "benchmarks/results/decode_speed.json"
    """where to write the JSON results"""
    plot: str = "benchmarks/results/decode_speed.png"
    """where to write the plot"""


class DecodeRecorder:
    """Wraps :func:`codegym.models.decoding.decode` to keep each row's decoded tokens (the policy's raw
    output, before its text is cut at the stop string); the policy imports ``decode`` at each call."""

    def __init__(self) -> None:
        self.original = decoding.decode
        self.rows: list[list[int]] = []

    def __enter__(self) -> DecodeRecorder:
        def recording(*args, **kwargs):
            tokens, logprobs = self.original(*args, **kwargs)
            self.rows.extend(list(row) for row in tokens)
            return tokens, logprobs

        decoding.decode = recording
        return self

    def __exit__(self, *exc) -> None:
        decoding.decode = self.original


def policy_arm(policy, prompts: list[str], max_new_tokens: int) -> tuple[float, float, list[list[int]]]:
    """One call of the policy over ``prompts``: wall and CPU seconds, and each prompt's decoded tokens (in
    prompt order)."""
    with DecodeRecorder() as recorder:
        start, cpu_start = time.perf_counter(), time.process_time()
        samples = policy.sample(prompts, max_new_tokens=max_new_tokens, temperature=0.0, seed=0)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    # Rows come back sorted by prompt length; map each back through its sample's kept tokens.
    by_prompt = []
    for [sample] in samples:
        kept = list(sample.token_ids)
        match = next(row for row in recorder.rows if row[: len(kept)] == kept)
        recorder.rows.remove(match)
        by_prompt.append(match)
    return seconds, cpu_seconds, by_prompt


def generate_arm(
    policy, texts: list[str], stop: list[str], max_new_tokens: int
) -> tuple[float, float, list[list[int]]]:
    """One ``model.generate`` call over the rendered ``texts`` (left-padded): wall and CPU seconds, and each row's new
    tokens, cut after its first end-of-sequence token (the rest is padding)."""
    tokenizer, model = policy.tokenizer, policy.model
    inputs = tokenizer(
        texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            stop_strings=stop,
            tokenizer=tokenizer,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=sorted(policy.eos_token_ids),
        )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return (
        seconds,
        cpu_seconds,
        [
            row_end(row, policy.eos_token_ids, stop, tokenizer)
            for row in output[:, inputs["input_ids"].shape[1] :].tolist()
        ],
    )


def row_end(row: list[int], eos: set[int], stop: list[str], tokenizer) -> list[int]:
    """A generated row up to where it ended: its first end-of-sequence token (kept), or the token that
    completed a stop string; in a batch ``generate`` pads a finished row until the last one ends."""
    for index, token in enumerate(row):
        if token in eos:
            return row[: index + 1]
        if any(s in tokenizer.decode(row[: index + 1], skip_special_tokens=True) for s in stop):
            return row[: index + 1]
    return row


def spread(values: list[float]) -> dict:
    return {
        "mean": statistics.mean(values),
        "min": min(values),
        "max": max(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
        "each": values,
    }


def shape_calls(shape: str, count: int) -> list[list[int]]:
    """The prompt indices of each call: one per call, or all in one."""
    return [[i] for i in range(count)] if shape == "single" else [list(range(count))]


def measure(model_name: str, args: Args, tasks) -> dict:
    load_start = time.perf_counter()
    policy = load_policy(model_name, protocol="direct", batch_size=max(args.prompts, 1))
    load_seconds = time.perf_counter() - load_start
    prompts = [policy_prompt(render_state(task.problem, []), 0) for task in tasks]
    built = [policy.protocol.build(prompt) for prompt in prompts]
    texts = [b.render(policy.tokenizer.apply_chat_template) for b in built]
    stop = list(built[0].stop)
    assert all(list(b.stop) == stop and b.max_new_tokens is None for b in built)
    result: dict = {
        "model": model_name,
        "parameters": sum(p.numel() for p in policy.model.parameters()),
        "load_seconds": round(load_seconds, 1),
        "prompt_tokens": [len(policy.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts],
        "stop": stop,
        "settings": {k: getattr(args, k) for k in ("prompts", "max_new_tokens", "repeats", "threads")},
        "shapes": {},
    }
    for shape in [s.strip() for s in args.shapes.split(",") if s.strip()]:
        calls = shape_calls(shape, len(prompts))

        def run_policy(calls=calls):
            seconds, cpu_seconds, rows = 0.0, 0.0, [None] * len(prompts)
            for call in calls:
                s, cpu, got = policy_arm(policy, [prompts[i] for i in call], args.max_new_tokens)
                seconds, cpu_seconds = seconds + s, cpu_seconds + cpu
                for i, row in zip(call, got, strict=True):
                    rows[i] = row
            return seconds, cpu_seconds, rows

        def run_generate(calls=calls):
            seconds, cpu_seconds, rows = 0.0, 0.0, [None] * len(prompts)
            for call in calls:
                s, cpu, got = generate_arm(policy, [texts[i] for i in call], stop, args.max_new_tokens)
                seconds, cpu_seconds = seconds + s, cpu_seconds + cpu
                for i, row in zip(call, got, strict=True):
                    rows[i] = row
            return seconds, cpu_seconds, rows

        arms = {"policy": run_policy, "generate": run_generate}
        print(f"[{time.strftime('%H:%M:%S')}] {model_name} {shape}: warm-up", file=sys.stderr)
        # Untimed: first-call costs (allocations, the policy's stop-token table), on a short call.
        policy_arm(policy, [prompts[i] for i in calls[0]], 16)
        generate_arm(policy, [texts[i] for i in calls[0]], stop, 16)
        repeats = []
        for repeat in range(args.repeats):
            order = ["policy", "generate"] if repeat % 2 == 0 else ["generate", "policy"]
            entry = {}
            for arm in order:
                seconds, cpu_seconds, rows = arms[arm]()
                tokens = sum(len(row) for row in rows)
                entry[arm] = {
                    "seconds": round(seconds, 3),
                    "cpu_seconds": round(cpu_seconds, 3),
                    "tokens": tokens,
                    "tokens_per_s": tokens / seconds,
                    "tokens_per_cpu_s": tokens / cpu_seconds,
                }
                entry[f"{arm}_rows"] = rows
            entry["ratio"] = entry["policy"]["tokens_per_s"] / entry["generate"]["tokens_per_s"]
            entry["ratio_cpu"] = entry["policy"]["tokens_per_cpu_s"] / entry["generate"]["tokens_per_cpu_s"]
            entry["load_average_1min"] = os.getloadavg()[0]
            repeats.append(entry)
            print(
                f"[{time.strftime('%H:%M:%S')}]   repeat {repeat}: policy "
                f"{entry['policy']['tokens_per_s']:.1f} tok/s, generate {entry['generate']['tokens_per_s']:.1f} "
                f"tok/s, ratio {entry['ratio']:.3f} (per CPU second {entry['ratio_cpu']:.3f})",
                file=sys.stderr,
            )
        first = repeats[0]
        identical = [p == g for p, g in zip(first["policy_rows"], first["generate_rows"], strict=True)]
        prefix = [
            next((k for k, (a, b) in enumerate(zip(p, g, strict=False)) if a != b), min(len(p), len(g)))
            for p, g in zip(first["policy_rows"], first["generate_rows"], strict=True)
        ]
        result["shapes"][shape] = {
            "calls": len(calls),
            "policy_tokens_per_s": [r["policy"]["tokens_per_s"] for r in repeats],
            "generate_tokens_per_s": [r["generate"]["tokens_per_s"] for r in repeats],
            "ratio_policy_over_generate": spread([r["ratio"] for r in repeats]),
            "policy_tokens_per_cpu_s": [r["policy"]["tokens_per_cpu_s"] for r in repeats],
            "generate_tokens_per_cpu_s": [r["generate"]["tokens_per_cpu_s"] for r in repeats],
            "ratio_per_cpu_second": spread([r["ratio_cpu"] for r in repeats]),
            "repeats": [{k: v for k, v in r.items() if not k.endswith("_rows")} for r in repeats],
            "tokens_identical": identical,
            "all_tokens_identical": all(identical),
            "tokens_policy": [len(row) for row in first["policy_rows"]],
            "tokens_generate": [len(row) for row in first["generate_rows"]],
            "first_difference_at": [None if same else k for same, k in zip(identical, prefix, strict=True)],
            "same_across_repeats": all(
                r["policy_rows"] == first["policy_rows"] and r["generate_rows"] == first["generate_rows"]
                for r in repeats
            ),
        }
    return result


def main() -> None:
    args = parse_args(Args, __doc__)
    if args.merge:
        parts = [json.loads(Path(part).read_text()) for part in args.merge.split(",") if part]
        merged = {
            **parts[0],
            "models": {},
            "parts": [{"args": p["args"], "commit": p["commit"]} for p in parts],
        }
        for part in parts:
            for name, run in part["models"].items():
                run.setdefault(
                    "settings",
                    {k: part["args"][k] for k in ("prompts", "max_new_tokens", "repeats", "threads")},
                )
                merged["models"][name] = run
        write(merged, args)
        return
    torch.set_num_threads(args.threads)
    tasks = list(load_tasks("humaneval"))[: args.prompts]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    results: dict = {
        "args": asdict(args),
        "tasks": [task.task_id for task in tasks],
        "commit": commit,
        "machine": machine(transformers=__import__("transformers").__version__),
        "models": {},
    }
    for model_name in [m.strip() for m in args.models.split(",") if m.strip()]:
        results["models"][model_name] = measure(model_name, args, tasks)
        write(results, args)
    print(json.dumps(results, indent=2))


def write(results: dict, args: Args) -> None:
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    models = list(results["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.5), squeeze=False)
    for ax, name in zip(axes[0], models, strict=True):
        shapes = results["models"][name]["shapes"]
        for k, run in enumerate(shapes.values()):
            for offset, arm in ((-0.17, "policy"), (0.17, "generate")):
                values = run[f"{arm}_tokens_per_s"]
                ax.bar(
                    k + offset,
                    statistics.mean(values),
                    width=0.32,
                    color="tab:blue" if arm == "policy" else "tab:orange",
                    label=("CodeGym policy (direct)" if arm == "policy" else "model.generate")
                    if k == 0
                    else None,
                )
                ax.scatter([k + offset] * len(values), values, color="black", s=10, zorder=3)
            ratio = run["ratio_policy_over_generate"]
            same = "tokens identical" if run["all_tokens_identical"] else "tokens differ"
            label = f"policy/generate x{ratio['mean']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f}) wall"
            cpu = run.get("ratio_per_cpu_second")
            if cpu:
                label += f"\nx{cpu['mean']:.2f} ({cpu['min']:.2f}-{cpu['max']:.2f}) per CPU s"
            ax.annotate(
                f"{label}\n{same}",
                (k, max(max(run["policy_tokens_per_s"]), max(run["generate_tokens_per_s"]))),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xticks(range(len(shapes)), [f"{s} ({shapes[s]['calls']} calls)" for s in shapes])
        settings = results["models"][name]["settings"]
        ax.set(
            ylabel="decoded tokens / s (greedy, wall clock)",
            title=f"{name}\n{settings['prompts']} HumanEval prompts, max_new_tokens {settings['max_new_tokens']}, "
            f"{settings['repeats']} repeats",
        )
        ax.margins(y=0.2)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"CodeGym's policy (the env's greedy direct call) vs model.generate, same model and token ids; "
        f"{results['args']['threads']} torch thread, interleaved repeats (dots)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
