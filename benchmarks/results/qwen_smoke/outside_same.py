"""Outside the env with the env's own direct messages: transformers' generate (not the env's decoder),
judged by HumanEval's check program; shows whether the env's decoding and harness change the answer."""

import json
import re
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from codegym.models.builtin import builtin_model_dir
from codegym.models.protocol import get_protocol
from codegym.sandbox import make_sandbox
from codegym.tasks import load_tasks
from codegym.tasks.humaneval import check_program_test

folder = builtin_model_dir("qwen2.5-coder-0.5b-instruct")
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
direct = get_protocol("direct")
results = []
with make_sandbox("local", workers=1) as box:
    for task in list(load_tasks("humaneval"))[: int(sys.argv[1])]:
        built = direct.build_steps(task.problem, [])
        text = built.render(tok.apply_chat_template)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=512, do_sample=False)
        reply = built.prefix + tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        code = re.findall(r"```python\n(.*?)(?:```|$)", reply, re.S)[0]
        if f"def {task.entry_point}" not in code:
            code = task.starter_code + code
        report = box.run(code, [check_program_test(task)], timeout_s=10)
        results.append({"task": task.task_id, "passed": report.all_passed})
        print(json.dumps(results[-1]), flush=True)
print("outside (env messages) passed", sum(r["passed"] for r in results), "of", len(results))
