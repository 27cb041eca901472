"""Two GRPO steps of the built-in tiny policy on CodeGym tasks, through either TRL route, on a CPU.

Routes:
  rewards  ``GRPOTrainer(reward_funcs=[CodeTestReward(...)])``: the model writes whole episodes
           (reasoning steps, then code) after the env's prompt; every completion's code runs in one
           sandbox batch; the visible tests pay, the hidden ones are logged.
  tools    ``GRPOTrainer(environment_factory=environment_factory(...))``: the episode is tools
           (``run_tests``, ``submit``) and ``get_reward()`` is the env's return. The tiny policy was never
           taught to call tools, so expect reward 0 here: this route shows the plumbing, not learning.

CPU settings: ``use_cpu=True, bf16=False, gradient_checkpointing=False`` (GRPOConfig turns bf16 and
gradient checkpointing on by default, and a step then takes several times longer on a CPU).

Run it:
    .venv/bin/python examples/trl_grpo.py --route rewards
    .venv/bin/python examples/trl_grpo.py --route tools --steps 2 --out /tmp/grpo-tools
It prints one JSON object: seconds per GRPO step and the mean reward of each step.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: a second torch thread only spin-waits
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is marked experimental

from codegym.integrations.trl import CodeTestReward, environment_factory, grpo_dataset
from codegym.models.tiny import tiny_checkpoint
from codegym.tasks.synthetic import SyntheticTasks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--route", choices=("rewards", "tools"), default="rewards")
    parser.add_argument("--steps", type=int, default=2, help="GRPO steps (default: 2)")
    parser.add_argument("--num-generations", type=int, default=4, help="completions per prompt (default: 4)")
    parser.add_argument("--max-completion-length", type=int, default=128, help="tokens (default: 128)")
    parser.add_argument("--sandbox", default="local", help="local, docker or auto (default: local)")
    parser.add_argument(
        "--trl-cpu-defaults",
        action="store_true",
        help="keep GRPOConfig's bf16=True and gradient checkpointing (to measure what they cost on a CPU)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import qwen2_5_chat_template

    torch.manual_seed(args.seed)
    path = tiny_checkpoint("policy")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    # One k=1 task per prompt and one prompt per step: the GRPO group is the num_generations samples.
    tasks = SyntheticTasks("train", min_ops=1, max_ops=1).tasks(args.steps, seed=args.seed)
    rows = grpo_dataset(tasks, conversational=args.route == "tools")

    config = GRPOConfig(
        output_dir=args.out or tempfile.mkdtemp(prefix="codegym-grpo-"),
        use_cpu=True,
        **({} if args.trl_cpu_defaults else {"bf16": False, "gradient_checkpointing": False}),
        max_steps=args.steps,
        per_device_train_batch_size=args.num_generations,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        learning_rate=1e-5,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        shuffle_dataset=False,
    )
    closers = []
    if args.route == "rewards":
        reward = CodeTestReward("synthetic", sandbox=args.sandbox, reward="terminal")
        closers.append(reward.close)
        routes = {"reward_funcs": [reward]}
    else:
        # The tiny tokenizer has no chat template; TRL recognises Qwen2.5's, which supports tool calls.
        tokenizer.chat_template = qwen2_5_chat_template
        factory = environment_factory(sandbox=args.sandbox, tasks="synthetic", reward="terminal")
        closers.append(factory.close)
        routes = {"environment_factory": factory}

    class StepClock(TrainerCallback):
        """Wall-clock seconds of each optimizer step (generation, rewards and the update)."""

        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_step_begin(self, *_, **__) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__) -> None:
            self.seconds.append(time.perf_counter() - self.started)

    clock = StepClock()
    trainer = GRPOTrainer(
        model=model, args=config, train_dataset=rows, processing_class=tokenizer, callbacks=[clock], **routes
    )
    before = [p.detach().clone() for p in model.parameters()]
    try:
        trainer.train()
    finally:
        for close in closers:
            close()
    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    changed = any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True))
    print(
        json.dumps(
            {
                "route": args.route,
                "steps": trainer.state.global_step,
                "step_seconds": [round(s, 2) for s in clock.seconds],
                "reward": [entry["reward"] for entry in logs],
                "hidden_pass_rate": [entry.get("codegym/hidden_pass_rate") for entry in logs],
                "parameters_changed": changed,
            }
        )
    )


if __name__ == "__main__":
    main()
