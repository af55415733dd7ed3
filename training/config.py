"""The typed recipe schema, validated once before any model or dataset loads.

Hydra composes YAML from `recipes/`; `validate()` merges the result onto these dataclasses (unknown keys
and wrong types fail there) and then checks the values that have a fixed set of choices. Every error names
the key, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from training.config_checks import check_grpo_options, check_method, check_objective, check_synth_options
from training.errors import KosovError, choice_error
from training.evaluation.thinking import check_limit as check_thinking_limit
from training.schema import (ATTN_IMPLEMENTATIONS, DEVICES, DTYPES, EVAL_BACKENDS, EVAL_THINKING, GENERATORS,
                             GRPO_GENERATION, GRPO_LOSSES, KERNELS, METHODS, ON_BAD_ROW, PEFT_METHODS, SCALE_REWARDS,
                             SFT_TURNS, SYNTH_FORMATS, TEACHER_BACKENDS, THINKING, TRACKERS, TRACKING_MODES,
                             VLLM_MODES, EvalConfig, KosovConfig)

# mirror= values (and KOSOV_MIRROR values) that mean no mirror, the Hub: Hydra and oc.env keep them as text.
MIRROR_OFF = ("", "null", "none", "None")


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def schema_at(path: list[str]) -> type | None:
    """The dataclass found by following `path` from KosovConfig, or None where it leaves the schema."""
    cls: Any = KosovConfig
    for part in path:
        hint = typing.get_type_hints(cls).get(part)
        candidates = [hint, *typing.get_args(hint)]  # unwrap Optional[X]
        cls = next((c for c in candidates if dataclasses.is_dataclass(c)), None)
        if cls is None:
            return None
    return cls


def unknown_key_error(full_key: str) -> KosovError:
    parent = full_key.rpartition(".")[0]
    cls = schema_at(parent.split(".")) if parent else KosovConfig
    allowed = field_names(cls) if cls else []
    section = parent or "the top level"
    return KosovError(
        f"unknown recipe key '{full_key}'",
        fix=f"keys allowed in {section}: {', '.join(allowed)}" if allowed else "check the key's spelling",
    )


def _check(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise choice_error(key, value, allowed)


def _check_positive(cfg: KosovConfig) -> None:
    positive = {
        "peft.r": cfg.peft.r,
        "peft.alpha": cfg.peft.alpha,
        "method.learning_rate": cfg.method.learning_rate,
        "method.per_device_train_batch_size": cfg.method.per_device_train_batch_size,
        "method.per_device_eval_batch_size": cfg.method.per_device_eval_batch_size,
        "method.gradient_accumulation_steps": cfg.method.gradient_accumulation_steps,
        "method.logging_steps": cfg.method.logging_steps,
        "method.eval_steps": cfg.method.eval_steps,
        "method.save_steps": cfg.method.save_steps,
    }
    for key, value in positive.items():
        if not value > 0:
            raise KosovError(f"{key}={value!r} must be greater than 0")
    if not 0.0 <= cfg.peft.dropout < 1.0:
        raise KosovError(f"peft.dropout={cfg.peft.dropout!r} must be in [0, 1)")
    if not 0.0 <= cfg.data.eval_ratio < 1.0:
        raise KosovError(f"data.eval_ratio={cfg.data.eval_ratio!r} must be in [0, 1)")
    if cfg.data.num_proc is not None and not 1 <= cfg.data.num_proc <= 256:
        raise KosovError(f"data.num_proc={cfg.data.num_proc!r} must be a number of processes from 1 to 256",
                         fix="or null: one per CPU core from 20,000 rows")


def _check_semantics(cfg: KosovConfig) -> None:
    _check("model.dtype", cfg.model.dtype, DTYPES)
    if cfg.peft.quantization is not None:
        _check("peft.quantization.compute_dtype", cfg.peft.quantization.compute_dtype, DTYPES)
        _check("peft.quantization.quant_type", cfg.peft.quantization.quant_type, ("nf4", "fp4"))
    _check("model.thinking", cfg.model.thinking, THINKING)
    _check("method.kernels", cfg.method.kernels, KERNELS)
    _check("model.attn_implementation", cfg.model.attn_implementation, ATTN_IMPLEMENTATIONS)
    _check("peft.method", cfg.peft.method, PEFT_METHODS)
    _check("method.name", cfg.method.name, METHODS)
    _check("tracking.backend", cfg.tracking.backend, TRACKERS)
    _check("tracking.mode", cfg.tracking.mode, TRACKING_MODES)
    _check("data.on_bad_row", cfg.data.on_bad_row, ON_BAD_ROW)
    _check("data.on_overlong", cfg.data.on_overlong, ON_BAD_ROW)
    _check("device", cfg.device, DEVICES)
    _check_positive(cfg)
    check_method(cfg)
    _check_targets(cfg)
    if (cfg.peft.method == "qlora") != (cfg.peft.quantization is not None):
        raise KosovError(
            f"peft.method={cfg.peft.method!r} with peft.quantization={'set' if cfg.peft.quantization else 'null'}",
            fix="use peft=qlora for 4-bit QLoRA (it sets both), or peft=lora / dora without quantization",
        )
    if cfg.method.name == "sft":
        if cfg.method.sft is None:
            raise KosovError("method.name='sft' needs a method.sft block", fix="compose with method=sft")
        _check("method.sft.turns", cfg.method.sft.turns, SFT_TURNS)
        if cfg.method.sft.max_length <= 0:
            raise KosovError(f"method.sft.max_length={cfg.method.sft.max_length} must be greater than 0")
    if cfg.method.name == "grpo":
        _check_grpo(cfg)
    _check_synth(cfg)
    _check_eval(cfg.eval)
    if not cfg.data.train_files and not cfg.data.hub_id:
        raise KosovError("no training data: data.train_files is empty and data.hub_id is null",
                         fix="set data.train_files=[path/to/train.jsonl] or data.hub_id=org/dataset")
    if cfg.data.train_files and cfg.data.hub_id:
        raise KosovError("both data.train_files and data.hub_id are set: one source per run",
                         fix="to read the hub dataset instead of the recipe's files, add data.train_files=[]")
    check_objective(cfg)  # caught before training, not after it
    if cfg.resume and cfg.overwrite:
        raise KosovError("resume=true and overwrite=true contradict each other", fix="choose one")


def _check_targets(cfg: KosovConfig) -> None:
    """peft.target_modules: 'all-linear' or a list of module names; an empty list only beside target_parameters
    (PEFT would find nothing to adapt, after the model loads)."""
    targets = cfg.peft.target_modules
    fix = "use 'all-linear' or a list of module names, e.g. peft.target_modules=[q_proj,v_proj]"
    if isinstance(targets, str) and targets != "all-linear":
        raise KosovError(f"peft.target_modules={targets!r} is not allowed", fix=fix)
    if cfg.peft.method == "none" or isinstance(targets, str):
        return
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise KosovError(f"peft.target_modules={targets!r} is not a list of module names", fix=fix)
    if not targets and not cfg.peft.target_parameters:
        raise KosovError(f"peft.target_modules=[] with no peft.target_parameters: peft.method={cfg.peft.method} "
                         "would put its adapter on nothing", fix=fix)


def _check_eval(ecfg: EvalConfig) -> None:
    _check("eval.backend", ecfg.backend, EVAL_BACKENDS)
    for mode in ecfg.thinking:
        _check("eval.thinking", mode, EVAL_THINKING)
    for key in ("thinking", "tasks"):  # a mode twice ran twice and failed after; a task twice scored as task[None]
        values = list(getattr(ecfg, key))
        twice = list(dict.fromkeys(v for v in values if values.count(v) > 1))
        if twice:
            raise KosovError(f"eval.{key} lists {', '.join(twice)} more than once",
                             fix=f"list each once: eval.{key}=[{','.join(dict.fromkeys(values))}]")
    check_thinking_limit(ecfg)
    own = [key for key in ("math", "language") if getattr(ecfg, key).enabled]
    for key in own:
        if not getattr(ecfg, key).data:
            raise KosovError(f"eval.{key}.enabled=true needs eval.{key}.data (prompt rows)")
    # kosov's evals, and lm-eval's tasks with chat templates, run once per thinking mode: none runs them not at all
    dropped = [f"eval.{key}" for key in own] + (["eval.tasks (chat-templated)"] if ecfg.apply_chat_template
                                                 and ecfg.tasks else [])
    if not ecfg.thinking and dropped:
        raise KosovError(f"eval.thinking=[] runs no thinking mode, which drops {' and '.join(dropped)} from the suite",
                         fix="list the modes to run, e.g. eval.thinking=[off] or eval.thinking=[off,on]")
    if ecfg.limit is not None and not ecfg.limit > 0:  # lm-eval reads 0 as no limit; kosov's evals a negative as 1
        raise KosovError(f"eval.limit={ecfg.limit:g} must be a number of examples per task (1 or more) or a share "
                         "of them (between 0 and 1)", fix="e.g. eval.limit=50 or eval.limit=0.1, or null for all")
    for key in ("math", "language"):
        limit = getattr(ecfg, key).limit
        if limit is not None and limit < 1:
            raise KosovError(f"eval.{key}.limit={limit!r} must be a number of prompts, 1 or more",
                             fix="or null for eval.limit's (all prompts when it is null)")
        if getattr(ecfg, key).max_new_tokens < 1:
            raise KosovError(f"eval.{key}.max_new_tokens={getattr(ecfg, key).max_new_tokens} must be a number of "
                             "tokens, 1 or more", fix="e.g. 512 (the default)")
    size, colon, per = str(ecfg.batch_size).partition(":")  # lm-eval: auto, auto:N (re-find the size N times) or N
    count = (per if colon else "1") if size == "auto" else "" if colon else size
    if not (count.isdigit() and int(count) >= 1):
        raise KosovError(f"eval.batch_size={ecfg.batch_size!r} must be auto, auto:N or a number of examples, 1 or more",
                         fix="e.g. eval.batch_size=auto or eval.batch_size=8")
    if ecfg.num_fewshot is not None and ecfg.num_fewshot < 0:
        raise KosovError(f"eval.num_fewshot={ecfg.num_fewshot} must be 0 or more",
                         fix="or null for each task's own number of examples")
    if ecfg.every_n_steps < 0:
        raise KosovError(f"eval.every_n_steps={ecfg.every_n_steps} must be a number of steps",
                         fix="e.g. eval.every_n_steps=100, or 0 for no suite during training")


def _check_synth(cfg: KosovConfig) -> None:
    s = cfg.synth
    _check("synth.generator", s.generator, GENERATORS)
    _check("synth.format", s.format, SYNTH_FORMATS)
    _check("synth.style", s.style, ("formal", "plain", "mixed"))
    _check("synth.teacher.backend", s.teacher.backend, TEACHER_BACKENDS)
    _check("synth.teacher.thinking", s.teacher.thinking, ("off", "on"))
    check_synth_options(s)
    if s.split is not None:
        _check("synth.split", s.split, ("train", "test"))
    if s.n <= 0:
        raise KosovError(f"synth.n={s.n} must be greater than 0")
    if s.generator == "math":
        from data_tools.generators.math_ko import FAMILIES

        for family in s.families or ():
            _check("synth.families", family, FAMILIES)
        if not s.difficulties:
            raise KosovError("synth.difficulties is empty", fix="use some of 1, 2, 3, e.g. synth.difficulties=[1,2]")
        for level in s.difficulties:
            if level not in (1, 2, 3):
                raise KosovError(f"synth.difficulties has {level!r}", fix="use some of 1, 2, 3")
    if s.generator != "math" and s.teacher.backend == "none":
        raise KosovError(f"synth.generator={s.generator} writes with an LLM, but synth.teacher.backend=none",
                         fix="set synth.teacher.backend=transformers | vllm | http")
    if s.generator in ("self_instruct", "evol_instruct", "translate", "distill") and not s.inputs:
        raise KosovError(f"synth.generator={s.generator} needs synth.inputs (files of seed tasks, instructions, "
                         "English rows or prompts)")


def _check_grpo(cfg: KosovConfig) -> None:
    from training.rewards import reward_params

    grpo = cfg.method.grpo
    if grpo is None:
        raise KosovError("method.name='grpo' needs a method.grpo block", fix="compose with method=grpo")
    _check("method.grpo.loss_type", grpo.loss_type, GRPO_LOSSES)
    _check("method.grpo.scale_rewards", grpo.scale_rewards, SCALE_REWARDS)
    _check("method.grpo.vllm_mode", grpo.vllm_mode, VLLM_MODES)
    _check("method.grpo.generation", grpo.generation, GRPO_GENERATION)
    for key in ("num_generations", "max_prompt_length", "max_completion_length", "num_iterations"):
        if getattr(grpo, key) <= 0:
            raise KosovError(f"method.grpo.{key}={getattr(grpo, key)} must be greater than 0")
    if grpo.num_generations < 2:
        raise KosovError("method.grpo.num_generations must be at least 2: GRPO compares completions in a group")
    check_grpo_options(grpo)
    if not cfg.rewards:
        raise KosovError("GRPO needs at least one reward", fix="e.g. rewards=[math_accuracy,language_consistency]")
    for name, node in cfg.rewards.items():
        reward_params(name, node if isinstance(node, dict) else {}, grpo.max_completion_length)
    if grpo.sft_stage and cfg.method.init_adapter:
        raise KosovError("method.grpo.sft_stage and method.init_adapter both name a starting adapter",
                         fix="keep one")


def _first_unknown_key(tree: Any, path: list[str]) -> str | None:
    """The first key of a composed recipe that the schema does not have (free-form sections such as rewards are
    checked by their own code)."""
    cls = schema_at(path) if path else KosovConfig
    if cls is None or not isinstance(tree, dict):
        return None
    names = field_names(cls)
    for key, value in tree.items():
        if key not in names:
            return ".".join([*path, str(key)])
        found = _first_unknown_key(value, [*path, str(key)])
        if found:
            return found
    return None


def validate(cfg: DictConfig | dict, semantics: bool = True) -> KosovConfig:
    """Merge a composed recipe onto the schema and check every value. Raises KosovError. `semantics=False`: the
    schema's types only, for a finished run's stored config, which this version's stricter checks must not refuse."""
    raw = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    raw = OmegaConf.masked_copy(raw, [k for k in raw.keys() if k != "hydra"]) if "hydra" in raw else raw
    unknown = _first_unknown_key(OmegaConf.to_container(raw, resolve=False), [])
    if unknown:  # a key added with '+' (as Hydra's own error suggests) passes composing but means nothing
        raise unknown_key_error(unknown)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(KosovConfig), raw)
        config: KosovConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except ConfigKeyError as e:
        raise unknown_key_error(str(e.full_key)) from None
    except ValidationError as e:
        raise KosovError(f"recipe key '{e.full_key}': {e.msg}") from None
    except OmegaConfBaseException as e:
        raise KosovError(f"recipe could not be resolved: {e.msg}", where=str(getattr(e, "full_key", "") or "")) from None
    if config.mirror in MIRROR_OFF:  # as apply_mirror reads them: no mirror (KOSOV_MIRROR=null is the text 'null')
        config.mirror = None
    if semantics:
        _check_semantics(config)
    return config


def to_dict(cfg: KosovConfig) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def resolve_path(path: str) -> Path:
    """A data path from a recipe: absolute, relative to the working directory, or `pkg://data_tools/...`."""
    if path.startswith("pkg://"):
        package, _, rest = path.removeprefix("pkg://").partition("/")
        import importlib.util

        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise KosovError(f"package '{package}' of data path '{path}' is not installed")
        return Path(list(spec.submodule_search_locations)[0]) / rest
    return Path(path).expanduser()
