"""Values that passed compose and then failed, or quietly trained wrong, after the model loaded: each is refused at
compose, by a KosovError that names the setting (training/config_checks.py, training/config.py)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from training.errors import KosovError
from training.recipes import compose
from training.schema import METRIC_KEYS

SFT = ["experiment=smoke-sft"]
GRPO = ["experiment=smoke-grpo"]
EVOL = ["experiment=synth-self-instruct-http", "synth.generator=evol_instruct"]
MATH = ["experiment=synth-math"]
NO_EVAL = ["data.eval_ratio=0"]

BAD = [
    # the Trainer's settings (method.*)
    (SFT, ["method.max_steps=0"], "method.max_steps=0"),
    (SFT, ["method.max_steps=-1", "method.num_train_epochs=0"], "method.num_train_epochs=0"),
    (SFT, ["method.max_steps=-1", "method.num_train_epochs=-1"], "method.num_train_epochs=-1"),
    (SFT, ["method.lr_scheduler_type=cosinus"], "method.lr_scheduler_type='cosinus'"),
    (SFT, ["method.lr_scheduler_type=cosine_with_min_lr"], "method.lr_scheduler_type=cosine_with_min_lr"),
    (SFT, ["method.lr_scheduler_type=cosine_warmup_with_min_lr"], "method.lr_scheduler_type=cosine_warmup_with_min"),
    (SFT, ["method.lr_scheduler_type=warmup_stable_decay"], "method.lr_scheduler_type=warmup_stable_decay"),
    (SFT, ["method.lr_scheduler_type=reduce_lr_on_plateau", *NO_EVAL], "method.lr_scheduler_type=reduce_lr_on"),
    (GRPO, ["method.lr_scheduler_type=greedy"], "method.lr_scheduler_type=greedy"),
    (SFT, ["method.optim=adam"], "method.optim='adam'"),
    (SFT, ["method.optim=galore_adamw"], "method.optim=galore_adamw"),
    (SFT, ["method.warmup_steps=-1"], "method.warmup_steps=-1"),
    (SFT, ["method.dataloader_num_workers=-1"], "method.dataloader_num_workers=-1"),
    (SFT, ["method.weight_decay=-0.1"], "method.weight_decay=-0.1"),
    (SFT, ["data.max_rows=0"], "data.max_rows=0"),
    # GRPO's sampling, clipping and vLLM
    (GRPO, ["method.grpo.temperature=0"], "method.grpo.temperature=0"),
    (GRPO, ["method.grpo.temperature=-1"], "method.grpo.temperature=-1"),
    (GRPO, ["method.grpo.top_p=0"], "method.grpo.top_p=0"),
    (GRPO, ["method.grpo.top_p=1.5"], "method.grpo.top_p=1.5"),
    (GRPO, ["method.grpo.beta=-0.1"], "method.grpo.beta=-0.1"),
    (GRPO, ["method.grpo.epsilon=-0.1"], "method.grpo.epsilon=-0.1"),
    (GRPO, ["method.grpo.epsilon_high=-0.1"], "method.grpo.epsilon_high=-0.1"),
    (GRPO, ["method.grpo.vllm_gpu_memory_utilization=0"], "method.grpo.vllm_gpu_memory_utilization=0"),
    (GRPO, ["method.grpo.vllm_gpu_memory_utilization=1.5"], "method.grpo.vllm_gpu_memory_utilization=1.5"),
    (GRPO, ["method.grpo.vllm_server_port=0"], "method.grpo.vllm_server_port=0"),
    (GRPO, ["method.grpo.vllm_server_port=70000"], "method.grpo.vllm_server_port=70000"),
    (GRPO, ["method.grpo.vllm_max_model_length=100"], "method.grpo.vllm_max_model_length=100"),
    # the sweep objective
    (SFT, ["objective=eval_loss.x"], "objective='eval_loss.x'"),
    (SFT, ["objective=data"], "objective='data'"),
    (SFT, ["objective=data.train_rows"], "objective='data.train_rows'"),
    (SFT, ["objective=train_loss_curve"], "objective='train_loss_curve'"),
    (SFT, ["objective=rewards.reward.last"], "objective=rewards.reward.last"),
    (SFT, ["objective=eval_loss", *NO_EVAL], "objective=eval_loss"),
    (SFT, ["objective=first_eval_loss", *NO_EVAL], "objective=first_eval_loss"),
    (GRPO, ["objective=rewards"], "objective=rewards is not"),
    (GRPO, ["objective=rewards.reward"], "objective=rewards.reward"),
    (GRPO, ["objective=rewards.reward.max"], "objective=rewards.reward.max"),
    (GRPO, ["objective=rewards.math_accuracy.last"], "objective=rewards.math_accuracy.last"),
    (GRPO, ["objective=rewards.rewards/judge/mean.last"], "objective=rewards.rewards/judge/mean.last"),
    # peft
    (SFT, ["peft.target_modules=[]"], "peft.target_modules=[]"),
    (SFT, ["peft.target_modules=5"], "peft.target_modules=5"),
    (SFT, ["peft.target_modules=[1,2]"], "peft.target_modules=[1, 2]"),
    # eval
    (SFT, ["eval.batch_size=0"], "eval.batch_size='0'"),
    (SFT, ["eval.batch_size=-1"], "eval.batch_size='-1'"),
    (SFT, ["eval.batch_size=big"], "eval.batch_size='big'"),
    (SFT, ["eval.batch_size=auto:0"], "eval.batch_size='auto:0'"),
    (SFT, ["eval.batch_size=8:2"], "eval.batch_size='8:2'"),
    (SFT, ["eval.num_fewshot=-1"], "eval.num_fewshot=-1"),
    (SFT, ["eval.math.max_new_tokens=0"], "eval.math.max_new_tokens=0"),
    (SFT, ["eval.language.max_new_tokens=0"], "eval.language.max_new_tokens=0"),
    (SFT, ["eval.every_n_steps=-1"], "eval.every_n_steps=-1"),
    # synth
    (EVOL, ["synth.evol_rounds=0"], "synth.evol_rounds=0"),
    (EVOL, ["synth.evol_operations=[]"], "synth.evol_operations"),
    (EVOL, ["synth.evol_operations=[deepen,shorten]"], "synth.evol_operations='shorten'"),
    (EVOL, ["synth.teacher.batch_size=0"], "synth.teacher.batch_size=0"),
    (EVOL, ["synth.teacher.max_new_tokens=0"], "synth.teacher.max_new_tokens=0"),
    (EVOL, ["synth.teacher.temperature=-0.5"], "synth.teacher.temperature=-0.5"),
    (MATH, ["+synth.gates.spellcheck={}"], "synth.gates"),
    (MATH, ["+synth.gates.pii={actoin: scrub}"], "synth.gates.pii"),  # as a recipe file may write it
    (MATH, ["+synth.gates.judge={min_score: 0.5}"], "synth.gates.judge"),
]


@pytest.mark.parametrize("recipe, overrides, said", BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_a_value_that_would_fail_after_the_model_loads_is_refused_at_compose(recipe, overrides, said):
    with pytest.raises(KosovError) as error:
        compose([*recipe, *overrides])
    assert said in error.value.what, error.value
    assert error.value.fix, "every refusal says what to do"


@pytest.mark.parametrize("recipe, overrides", [
    (["experiment=sweep-smoke-sft-optuna"], []),  # objective=eval_loss, with smoke-sft's eval split
    (SFT, ["objective=last_train_loss"]),
    (SFT, ["objective=last_train_loss", *NO_EVAL]),
    (SFT, ["objective=eval_loss", "data.eval_ratio=0", "data.eval_files=[pkg://data_tools/datasets/ko_chat_seed.jsonl]"]),
    (GRPO, ["objective=rewards.reward.last"]),
    (GRPO, ["objective=rewards.rewards/math_accuracy/mean.mean"]),
    (SFT, ["method.max_steps=-1", "method.num_train_epochs=0.5"]),
    (SFT, ["method.lr_scheduler_type=reduce_lr_on_plateau"]),  # smoke-sft has an eval split
    (SFT, ["method.optim=adamw_torch_fused", "method.warmup_steps=10", "data.max_rows=null"]),
    (SFT, ["peft=none", "peft.target_modules=[]"]),  # a full fine-tune has no targets
    (SFT, ["peft.target_modules=[q_proj,v_proj]"]),
    (SFT, ["eval.batch_size=8", "eval.num_fewshot=0"]),
    (SFT, ["eval.batch_size=auto:4"]),
    (SFT, ["method.save_total_limit=0"]),  # transformers keeps every checkpoint: the one way to ask for that
    (GRPO, ["method.grpo.epsilon_high=null", "method.grpo.top_p=1", "method.grpo.vllm_max_model_length=1024"]),
    (EVOL, ["synth.evol_rounds=2", "synth.evol_operations=[deepen]", "synth.teacher.temperature=0"]),
    (["experiment=synth-self-instruct-http"], ["synth.evol_operations=[]"]),  # read only by evol_instruct
])
def test_the_values_next_to_the_refused_ones_still_compose(recipe, overrides):
    compose([*recipe, *overrides])


def test_a_finished_runs_stored_config_is_read_without_this_versions_recipe_checks():
    """publish.merge reads the run's config.yaml: a run that an earlier kosov trained (a sweep's objective=eval_loss
    without an eval split, say) could not be published, refused with advice about training it."""
    from training.config import to_dict, validate

    stored = to_dict(compose([*SFT, "data.eval_ratio=0"]))
    stored["objective"] = "eval_loss"  # as an earlier kosov accepted it
    with pytest.raises(KosovError, match="objective=eval_loss"):
        validate(stored)
    assert validate(stored, semantics=False).objective == "eval_loss"


@pytest.mark.skipif("eval_rewards" not in METRIC_KEYS, reason="metrics.json has no eval_rewards yet")
def test_an_eval_reward_objective_needs_grpo_with_an_eval_split():
    valid = "objective=eval_rewards.eval_rewards/math_accuracy/mean.last"
    assert compose([*GRPO, valid, "data.eval_ratio=0.1"]).objective == valid.partition("=")[2]
    for recipe, overrides, said in [
        (GRPO, [valid], "needs an eval split"),  # smoke-grpo's data: data.eval_ratio=0
        (GRPO, ["objective=eval_rewards.reward.last", "data.eval_ratio=0.1"], "eval_rewards.reward.last"),
        (SFT, ["objective=eval_rewards.eval_reward.last"], "names GRPO's rewards"),
    ]:
        with pytest.raises(KosovError, match=re.escape(said)):
            compose([*recipe, *overrides])


def test_the_scheduler_and_optimizer_names_are_the_installed_transformers_ones():
    """kosov keeps them as text (importing transformers at compose would come before the mirror's settings): an
    upgrade of transformers that adds or drops one fails here."""
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    from training.config_checks import LR_SCHEDULERS, OPTIMIZERS, SCHEDULER_NEEDS, SCHEDULERS_ON_EVAL

    assert LR_SCHEDULERS == tuple(s.value for s in SchedulerType)
    assert OPTIMIZERS == tuple(o.value for o in OptimizerNames)
    assert set(SCHEDULER_NEEDS) | set(SCHEDULERS_ON_EVAL) <= set(LR_SCHEDULERS)


def test_the_checks_import_no_hugging_face_library():
    code = ("import sys, training.recipes, training.config, training.config_checks; "
            "from training.recipes import compose; compose(['experiment=synth-self-instruct-http', "
            "'synth.generator=evol_instruct']); compose(['experiment=smoke-grpo']); "
            "print([m for m in ('transformers', 'huggingface_hub', 'datasets', 'torch') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
