"""Qwen2.5-Coder greedy on HumanEval outside the env: plain transformers generate, the model's chat
template, a standard prompt; judged by HumanEval's own check program in the local sandbox."""

import json
import re
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from codegym.models.builtin import builtin_model_dir
from codegym.sandbox import make_sandbox
from codegym.tasks import load_tasks
from codegym.tasks.humaneval import check_program_test

n = int(sys.argv[1])
folder = builtin_model_dir("qwen2.5-coder-0.5b-instruct")
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
tasks = list(load_tasks("humaneval"))[:n]
results = []
with make_sandbox("local", workers=1) as box:
    for task in tasks:
        messages = [
            {
                "role": "user",
                "content": "Complete the following Python function. Answer with one "
                "```python block holding the complete function.\n\n```python\n" + task.problem + "```",
            }
        ]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        start = time.time()
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=512, do_sample=False)
        reply = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        blocks = re.findall(r"```(?:python)?\n(.*?)```", reply, re.S)
        code = blocks[0] if blocks else reply
        if f"def {task.entry_point}" not in code:
            code = task.starter_code + code
        report = box.run(code, [check_program_test(task)], timeout_s=10)
        results.append(
            {"task": task.task_id, "passed": report.all_passed, "s": round(time.time() - start, 1)}
        )
        print(json.dumps(results[-1]), flush=True)
print("outside passed", sum(r["passed"] for r in results), "of", len(results))
