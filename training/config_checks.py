"""Recipe values that pass the schema but fail, or quietly misbehave, only once the model has loaded: the Trainer's
settings, GRPO's sampling, clipping and vLLM options, the sweep objective, and synth's evolutions, teacher and
gates. training/config.py (_check_semantics) calls these at compose; each error names the setting, its value and
a fix. Nothing here imports a Hugging Face library: the mirror sets their environment before they load.
"""

from __future__ import annotations

from training.errors import KosovError, choice_error
from training.schema import METRIC_KEYS, GRPOOptions, KosovConfig, SynthConfig

# transformers' SchedulerType and OptimizerNames values, as text (tests/training/test_config_checks.py holds them
# to the installed transformers, so that an upgrade which adds or drops one is noticed).
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                 "warmup_stable_decay", "greedy")
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw_torch_xla", "adamw_torch_npu_fused", "adafactor",
              "adamw_anyprecision", "adamw_torch_4bit", "adamw_torch_8bit", "ademamix", "sgd", "adagrad",
              "adamw_bnb_8bit", "adamw_8bit", "ademamix_8bit", "lion_8bit", "lion_32bit", "paged_adamw_32bit",
              "paged_adamw_8bit", "paged_ademamix_32bit", "paged_ademamix_8bit", "paged_lion_32bit", "paged_lion_8bit",
              "rmsprop", "rmsprop_bnb", "rmsprop_bnb_8bit", "rmsprop_bnb_32bit", "galore_adamw", "galore_adamw_8bit",
              "galore_adafactor", "galore_adamw_layerwise", "galore_adamw_8bit_layerwise",
              "galore_adafactor_layerwise", "lomo", "adalomo", "grokadamw", "schedule_free_radam",
              "schedule_free_adamw", "schedule_free_sgd", "apollo_adamw", "apollo_adamw_layerwise", "stable_adamw")
# Schedulers whose function needs a keyword of lr_scheduler_kwargs, which a recipe cannot set: the Trainer fails
# when it builds the scheduler, after the model and the data have loaded.
SCHEDULER_NEEDS = {"cosine_with_min_lr": "min_lr or min_lr_rate", "cosine_warmup_with_min_lr": "min_lr or min_lr_rate",
                   "warmup_stable_decay": "num_decay_steps"}
SCHEDULERS_ON_EVAL = ("reduce_lr_on_plateau", "greedy")  # stepped on the eval loss: TrainingArguments wants one
SCHEDULER_FIX = "use one of: linear, cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup, " \
                "inverse_sqrt"
LOW_RANK_OPTIMIZERS = ("galore_", "apollo_")  # need optim_target_modules, which kosov does not pass

# metrics.json keys (train.summarize) that hold no single number: a list of (step, value) pairs or a section
NOT_A_NUMBER = ("train_loss_curve", "eval_loss_curve", "reward_curve", "data")
REWARD_STATS = ("first", "last", "mean")
# sections of GRPO's reward summaries (first / last / mean), by the prefix of their keys: TRL logs the weighted sum
# as reward (eval_reward) and each reward's mean as rewards/<name>/mean (eval_rewards/<name>/mean)
REWARD_SECTIONS = {"rewards": "", "eval_rewards": "eval_"}


def has_eval_split(cfg: KosovConfig) -> bool:
    """Whether the run evaluates at all (a tiny data set may still leave its split empty)."""
    return bool(cfg.data.eval_files) or cfg.data.eval_ratio > 0


def _at_least(key: str, value: float | None, low: float, what: str, fix: str) -> None:
    if value is not None and not value >= low:
        raise KosovError(f"{key}={value!r} must be {what}", fix=fix)


def check_method(cfg: KosovConfig) -> None:
    """The TrainingArguments kosov passes from method.* (train.trainer_args), and data.max_rows."""
    m = cfg.method
    if m.max_steps == 0:  # transformers trains for num_train_epochs only when max_steps < 0
        raise KosovError("method.max_steps=0 is not 'no limit': transformers trains for method.num_train_epochs only "
                         "with a negative max_steps, and with 0 it stops after the first step",
                         fix="use -1 to train for method.num_train_epochs, or a number of steps > 0")
    if m.max_steps < 0 and not m.num_train_epochs > 0:
        raise KosovError(f"method.num_train_epochs={m.num_train_epochs!r} with method.max_steps={m.max_steps} trains "
                         "0 steps and saves an untouched adapter",
                         fix="set method.num_train_epochs > 0 (e.g. 1), or method.max_steps to a number of steps > 0")
    if m.lr_scheduler_type not in LR_SCHEDULERS:
        raise choice_error("method.lr_scheduler_type", m.lr_scheduler_type, LR_SCHEDULERS)
    if m.lr_scheduler_type in SCHEDULER_NEEDS:
        raise KosovError(f"method.lr_scheduler_type={m.lr_scheduler_type} needs "
                         f"{SCHEDULER_NEEDS[m.lr_scheduler_type]} (transformers' lr_scheduler_kwargs), which a kosov "
                         "recipe does not pass: the Trainer would fail after the model loads", fix=SCHEDULER_FIX)
    if m.lr_scheduler_type in SCHEDULERS_ON_EVAL and not has_eval_split(cfg):
        raise KosovError(f"method.lr_scheduler_type={m.lr_scheduler_type} steps on the eval loss, but the run has no "
                         "eval split (data.eval_ratio=0 and no data.eval_files)",
                         fix=f"give it one (data.eval_ratio=0.05), or {SCHEDULER_FIX}")
    if m.optim not in OPTIMIZERS:
        raise choice_error("method.optim", m.optim, OPTIMIZERS)
    if m.optim.startswith(LOW_RANK_OPTIMIZERS):
        raise KosovError(f"method.optim={m.optim} needs optim_target_modules, which a kosov recipe does not pass: the "
                         "Trainer would fail after the model loads", fix="use e.g. adamw_torch or adamw_8bit")
    _at_least("method.warmup_steps", m.warmup_steps, 0, "0 or more: below 1 a share of all steps, from 1 a number of "
              "steps", fix="e.g. method.warmup_steps=0.03")
    _at_least("method.weight_decay", m.weight_decay, 0, "0 or more (a negative decay pushes weights away from 0)",
              fix="e.g. method.weight_decay=0.0 (no decay) or 0.01")
    _at_least("method.dataloader_num_workers", m.dataloader_num_workers, 0, "a number of worker processes, 0 or "
              "more", fix="0 loads batches in the training process")
    _at_least("data.max_rows", cfg.data.max_rows, 1, "a number of rows, 1 or more", fix="or null for all rows")


def check_grpo_options(grpo: GRPOOptions) -> None:
    """GRPO's sampling, clipping and vLLM settings (method.grpo.*), which TRL and vLLM read only after the model
    loads."""
    if not grpo.temperature > 0:  # TRL divides the logits by it; vLLM samples greedily at 0
        raise KosovError(f"method.grpo.temperature={grpo.temperature!r} must be greater than 0: at 0 every "
                         "completion of a group is the same, so their advantages are 0 and nothing trains",
                         fix="e.g. method.grpo.temperature=1.0 (the default)")
    if not 0 < grpo.top_p <= 1:
        raise KosovError(f"method.grpo.top_p={grpo.top_p!r} must be in (0, 1]", fix="1.0 samples from every token")
    _at_least("method.grpo.beta", grpo.beta, 0, "0 or more (the KL weight; 0: no reference model)",
              fix="e.g. method.grpo.beta=0.0 (the default) or 0.04")
    for key in ("epsilon", "epsilon_high"):  # epsilon_high null: TRL uses epsilon
        _at_least(f"method.grpo.{key}", getattr(grpo, key), 0, "0 or more (the clipping range around ratio 1)",
                  fix="e.g. method.grpo.epsilon=0.2 method.grpo.epsilon_high=0.28 (the defaults)")
    if not 0 < grpo.vllm_gpu_memory_utilization <= 1:
        raise KosovError(f"method.grpo.vllm_gpu_memory_utilization={grpo.vllm_gpu_memory_utilization!r} must be a "
                         "share of the GPU's memory, in (0, 1]", fix="e.g. 0.3 (the default)")
    if not 1 <= grpo.vllm_server_port <= 65535:
        raise KosovError(f"method.grpo.vllm_server_port={grpo.vllm_server_port} is not a TCP port (1 to 65535)",
                         fix="e.g. 8000, the port of `trl vllm-serve`")
    needed = grpo.max_prompt_length + grpo.max_completion_length
    if grpo.vllm_max_model_length is not None and grpo.vllm_max_model_length < needed:
        raise KosovError(f"method.grpo.vllm_max_model_length={grpo.vllm_max_model_length} is shorter than a prompt "
                         f"and its completion (max_prompt_length {grpo.max_prompt_length} + max_completion_length "
                         f"{grpo.max_completion_length} = {needed})", fix=f"use null ({needed}) or {needed} or more")


def check_objective(cfg: KosovConfig) -> None:
    """`objective` must name one number of the run's metrics.json (read back by cli.objective_value after training:
    a wrong name cost every trial of a sweep its training)."""
    objective = cfg.objective
    if not objective:
        return
    head, _, tail = objective.partition(".")
    scalars = [k for k in METRIC_KEYS if k not in (*NOT_A_NUMBER, *REWARD_SECTIONS)]
    if head not in METRIC_KEYS:
        raise KosovError(f"objective={objective!r} names no key of a run's metrics.json",
                         fix=f"use one of {', '.join(scalars)} (dotted into rewards: rewards.reward.last)")
    if head in NOT_A_NUMBER:
        raise KosovError(f"objective={objective!r} names {'a section' if head == 'data' else 'a curve'} of "
                         "metrics.json, not a number a sweep can optimise", fix=f"use one of {', '.join(scalars)}")
    if head in REWARD_SECTIONS:
        check_reward_objective(cfg, objective, head)
    elif tail:
        raise KosovError(f"objective={objective!r}: metrics.json's {head} is a number, with no keys below it",
                         fix=f"use objective={head}")
    if head in ("eval_loss", "first_eval_loss", "eval_rewards") and not has_eval_split(cfg):
        raise KosovError(f"objective={objective} needs an eval split, but data.eval_ratio=0 and data.eval_files is "
                         "empty: every run would train and then fail for want of the value",
                         fix="set data.eval_ratio (e.g. 0.05) or data.eval_files, or use objective="
                             + ("rewards.reward.last" if head == "eval_rewards" else "last_train_loss"))


def check_reward_objective(cfg: KosovConfig, objective: str, section: str) -> None:
    """<section>.<key>.<stat>, e.g. rewards.reward.last or eval_rewards.eval_rewards/math_accuracy/mean.mean."""
    prefix = REWARD_SECTIONS[section]
    keys = [f"{prefix}reward", *(f"{prefix}rewards/{name}/mean" for name in cfg.rewards)]
    if cfg.method.name != "grpo":
        raise KosovError(f"objective={objective} names GRPO's rewards, but method.name={cfg.method.name} logs none",
                         fix="use a loss, e.g. objective=eval_loss or objective=last_train_loss")
    key, _, stat = objective.removeprefix(f"{section}.").rpartition(".")
    if key not in keys or stat not in REWARD_STATS:
        raise KosovError(f"objective={objective} is not a reward value of this recipe's metrics.json",
                         fix=f"use {section}.<key>.<{'|'.join(REWARD_STATS)}> with <key> one of: {', '.join(keys)} "
                             f"(e.g. objective={section}.{keys[0]}.last: the total reward's last logged value)")


def check_synth_options(s: SynthConfig) -> None:
    """evol_instruct's rounds and operations, the teacher's sampling and batch, and the gates' names and parameters
    (built only after the teacher loads)."""
    if s.generator == "evol_instruct":
        from data_tools.generators.instructions import EVOLVE

        known = tuple(EVOLVE)
        _at_least("synth.evol_rounds", s.evol_rounds, 1, "a number of evolution rounds, 1 or more (0 evolves "
                  "nothing)", fix="e.g. synth.evol_rounds=1")
        if not s.evol_operations:
            raise KosovError("synth.evol_operations is empty: evol_instruct picks each evolution from it",
                             fix=f"use some of {', '.join(known)}, e.g. synth.evol_operations=[{','.join(known)}]")
        for operation in s.evol_operations:
            if operation not in known:
                raise choice_error("synth.evol_operations", operation, known)
    t = s.teacher
    _at_least("synth.teacher.batch_size", t.batch_size, 1, "a number of prompts per generate() call, 1 or more",
              fix="e.g. synth.teacher.batch_size=8 (the default)")
    _at_least("synth.teacher.max_new_tokens", t.max_new_tokens, 1, "a number of tokens, 1 or more",
              fix="e.g. synth.teacher.max_new_tokens=1024 (the default)")
    _at_least("synth.teacher.temperature", t.temperature, 0, "0 (greedy) or more",
              fix="or null for each generator's own")
    if s.gates:
        from data_tools.gates import GATES, gate_parameters

        for name, params in s.gates.items():
            if name not in GATES:
                raise KosovError(f"synth.gates names an unknown gate '{name}'",
                                 fix=f"use gates from: {', '.join(GATES)}")
            if not isinstance(params, (dict, type(None))):
                raise KosovError(f"synth.gates.{name}={params!r} is not a mapping of parameters",
                                 fix=f"e.g. synth.gates.{name}={{}} for its defaults")
            unknown = sorted(set(params or {}) - set(gate_parameters(name)))
            if unknown:
                raise KosovError(f"synth.gates.{name} has unknown parameters {unknown}",
                                 fix=f"parameters of {name}: {', '.join(gate_parameters(name)) or '(none)'}")
        if "judge" in s.gates and t.backend == "none":
            raise KosovError("synth.gates.judge needs a teacher to score rows, but synth.teacher.backend=none",
                             fix="set synth.teacher.backend=transformers | vllm | http")
