"""`kosov train`: one straight path with named phases, shared by every training method.

    kosov train experiment=smoke-sft                   # tiny-ko on CPU, a minute
    kosov train experiment=qwen3-1.7b-ko-sft            # one GPU

Phases: seed -> run folder -> tokenizer -> data -> model -> record (config, provenance, tracker) ->
trainer -> train (or resume) -> save -> metrics. The method module (sft) supplies only its data step and
its TRL trainer; the run folder, tracking, resume and saving live here once.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import timedelta
from logging.handlers import BufferingHandler
from pathlib import Path
from typing import Any

import yaml

from training import grpo, sft
from training.config import to_dict
from training.data_rows import check_eval_left
from training.schema import KosovConfig
from training.errors import KosovError
from training.adapters import (adapter_dir, adapter_model_config, check_adapter_base, continued_settings, load_adapter,
                               lora_config, upcast_trainable)
from training.base_commit import base_commit
from training.models import (bf16_gpu, check_attention, check_kernels, check_remote_code, compute_dtype, end_of_turn_id,
                             liger_for, load_base_model, load_tokenizer, model_source, quantization_config,
                             resolve_device, stop_ids, zero3_init)
from training.provenance import provenance, resume_provenance
from training.redaction import redact
from training.rendered_store import RENDERED, remove as remove_rendered, remove_markers
from training.resume_checks import check_same_data, check_same_processes, check_same_recipe
from training.run_dir import (RunDir, add_file_logging, default_output_dir, lock_run_folder, prepare_run_dir,
                              refuse_existing_run)
from training.sft_stage import run_sft_stage
from training.safe_write import swap_into_place, write_atomic, write_json
from training.tracking import Tracker, open_tracker

log = logging.getLogger(__name__)

METHODS = {"sft": sft, "grpo": grpo}
DDP_TIMEOUT_S = 1800  # transformers' TrainingArguments.ddp_timeout default


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, Any]
    trainer: Any  # the TRL trainer, for callers that want to inspect the trained model


def mixed_precision(m: Any, device: str) -> str:
    """bf16 autocast on GPUs that have it, fp16 with loss scaling on older ones (V100, T4), none on CPU;
    method.bf16=true/false overrides."""
    if m.bf16 is not None:
        return "bf16" if m.bf16 else "no"
    if device != "cuda":
        return "no"
    return "bf16" if bf16_gpu() else "fp16"


def check_precision(cfg: KosovConfig, device: str, full_model: bool) -> None:
    """fp16 mixed precision scales the loss and unscales fp32 master gradients: a full fine-tune of fp16 weights has
    none, and would fail at its first optimizer step. A full fine-tune of bf16 weights runs, but loses most small
    updates: said once, since it halves the memory and may be what the user chose it for."""
    if not full_model:
        return
    if cfg.model.dtype == "float16" and mixed_precision(cfg.method, device) == "fp16":
        raise KosovError("model.dtype=float16 with peft=none trains every weight in fp16, which fp16 mixed "
                         "precision (this GPU has no bf16) cannot do",
                         fix="set model.dtype=auto or float32 (fp32 weights, fp16 compute), or train an adapter "
                             "(peft=lora)")
    if cfg.model.dtype == "bfloat16":
        log.warning("model.dtype=bfloat16 with peft=none: every weight trains in bf16, with no fp32 master copy; "
                    "Adam's steps below a weight's bf16 rounding step (most at ~1e-5) are lost. model.dtype=auto "
                    "keeps fp32 weights under bf16 autocast (16 bytes per parameter with Adam; FSDP / ZeRO shard "
                    "them across GPUs)")


def runtime_settings(cfg: KosovConfig, model: Any, device: str) -> dict[str, Any]:
    """What the recipe's `auto` choices became on this machine, for provenance.json and the log."""
    quant = cfg.peft.quantization
    computes = str(compute_dtype(quant, device)).removeprefix("torch.") if quant else None
    attention = model.config._attn_implementation
    return {
        "device": device,
        "dtype": str(model.dtype).removeprefix("torch."),
        "attention": attention,
        "mixed_precision": mixed_precision(cfg.method, device),
        "liger_kernels": liger_for(cfg.method.kernels, device, model.config.model_type),
        "activation_checkpointing": cfg.method.activation_checkpointing,
        "quantization": f"{quant.quant_type}, double quant {quant.double_quant}, {computes} compute"
                        if quant else None,
        "generation": grpo.generation_backend(cfg, device) if cfg.method.name == "grpo" else None,
        # the Trainer's: SFT packing for SDPA or eager takes one block per forward (sft.batch_sizes)
        "batch": sft.batch_sizes(cfg, attention),
    }


def trainer_args(cfg: KosovConfig, run: RunDir, device: str, report_to: list[str], model_type: str | None = None
                 ) -> dict[str, Any]:
    """TrainingArguments every TRL trainer gets from a kosov recipe (model_type: the loaded model's, for Liger)."""
    m = cfg.method
    precision = mixed_precision(m, device)
    return dict(
        output_dir=str(run.checkpoints),
        run_name=run.path.name,
        seed=cfg.seed,
        learning_rate=m.learning_rate,
        lr_scheduler_type=m.lr_scheduler_type,
        warmup_steps=m.warmup_steps,
        weight_decay=m.weight_decay,
        max_grad_norm=m.max_grad_norm,
        num_train_epochs=m.num_train_epochs,
        max_steps=m.max_steps,
        per_device_train_batch_size=m.per_device_train_batch_size,
        per_device_eval_batch_size=m.per_device_eval_batch_size,
        gradient_accumulation_steps=m.gradient_accumulation_steps,
        activation_checkpointing=m.activation_checkpointing,
        optim=m.optim,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        logging_steps=m.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=m.save_steps,
        save_total_limit=m.save_total_limit,
        dataloader_num_workers=m.dataloader_num_workers,
        report_to=report_to,
        disable_tqdm=False,
        use_liger_kernel=liger_for(m.kernels, device, model_type),
        # the checkpoint prepare_run_dir picked (run.resume_from), or None: trainer.train continues from it, and the
        # method's trainer knows it resumes (SFT takes no step-0 eval then) without looking through checkpoints/ again
        resume_from_checkpoint=str(run.resume_from) if run.resume_from else None,
    )


def _save_final(trainer: Any, run: RunDir, full_model: bool) -> Path:
    """Save the adapter (or full model) with its tokenizer into a staging folder, then move it into place. Only
    the main process clears and moves the folder, with every process waiting for it before and after: under DDP
    save_model writes on the main process alone with no barrier, so another process clearing the staging folder
    a moment late deleted the adapter being written (an empty adapter/ in a run that said it finished)."""
    target = run.path / ("model" if full_model else "adapter")
    staging = run.path / f".{target.name}.saving"
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(staging))  # FSDP / ZeRO-3 gather the weights from every process here
    if main:
        # PEFT saves every adapter the model holds, each but "default" (the trained one) in a subfolder of its name:
        # with beta > 0, TRL's GRPO holds a frozen copy of a starting adapter as "ref", its reference. Not published.
        held = getattr(trainer.accelerator.unwrap_model(trainer.model), "peft_config", None) or {}
        for name in held:
            if name != "default":
                shutil.rmtree(staging / name, ignore_errors=True)
        swap_into_place(staging, target)
    trainer.accelerator.wait_for_everyone()  # no process goes on (to its eval, its exit) before adapter/ is there
    return target


def train(cfg: KosovConfig) -> TrainResult:
    """Run one training job from a validated recipe. User errors raise KosovError."""
    if cfg.mirror:  # the CLI applied it already; a Python caller gets it here, or a clear "too late"
        from training.mirror_check import check_mirror  # first: a model, dataset or task not in the mirror, named

        check_mirror(cfg, "train")
    # Hugging Face's libraries read their cache and offline settings when imported: only after the mirror's are set
    # (importing this module imports none of them)
    from accelerate import PartialState
    from transformers import set_seed

    from training.preemption import StopOnSigterm, StoppedBySignal, resume_fix, workers_ignore_sigterm
    from training.resume_state import (ResumedTokenCount, ResumedTrainTime, TrainedForEpochs, checkpoint_at_end,
                                       finish_at_checkpoint, finished_metrics)
    from training.run_metrics import RunWallTime, summarize
    started = time.time()
    method = METHODS[cfg.method.name]
    set_seed(cfg.seed)
    device = resolve_device(cfg.device)
    # on CPU: gloo across processes under torchrun / accelerate launch. Collectives wait up to TrainingArguments'
    # ddp_timeout (30 min), which the Trainer's own state would have set: torch's default for NCCL is 10 min, less
    # than TRL's main process may take to build labels and pack a large set while the others wait.
    state = PartialState(cpu=device == "cpu", timeout=timedelta(seconds=DDP_TIMEOUT_S))
    is_main = state.is_main_process
    method.preflight(cfg, device, state.num_processes)
    liger_for(cfg.method.kernels, device)  # a GPU-only kernel on CPU fails here, before the run folder exists
    quantization_config(cfg.peft, device)  # so does QLoRA: before the data is read and the model loads
    if cfg.eval.every_n_steps:
        from training.evaluation.callback import check_tasks, check_unsharded

        check_unsharded()
        suite_modes = check_tasks(cfg.eval)  # a misspelt task fails here, not at the first suite step
    if state.num_processes > 1 and not cfg.output_dir:
        raise KosovError(f"{state.num_processes} processes would each pick their own timestamped run folder",
                         fix="pass output_dir=DIR under accelerate launch / torchrun / SLURM")
    if cfg.resume and not cfg.output_dir:  # a new timestamped folder: nothing there to continue
        from training.run_dir import resume_needs_folder

        raise resume_needs_folder(cfg.name)
    output_dir = Path(cfg.output_dir or default_output_dir(cfg.name))
    if cfg.method.init_adapter:  # continued in the prompt format it trained with, as eval and serve prompt it
        cfg = dataclasses.replace(cfg, model=adapter_model_config(cfg.model, adapter_dir(cfg.method.init_adapter)))
    resolved = redact(to_dict(cfg))
    chained = cfg.method.grpo is not None and bool(cfg.method.grpo.sft_stage)
    full_model = cfg.peft.method == "none" and not chained and not cfg.method.init_adapter  # every weight trains
    check_precision(cfg, device, full_model)
    precision = mixed_precision(cfg.method, device)
    # The folder is held from here, before it is judged: what a killed job left in it is put right first (an
    # overwrite cut short puts the earlier run back), and a second job must not retrain a running job's SFT stage.
    tidy_log = BufferingHandler(10_000)  # what putting the folder right logs, kept for train.log once it is open
    logging.getLogger().addHandler(tidy_log)
    try:
        held = lock_run_folder(output_dir) if is_main else None
    finally:
        logging.getLogger().removeHandler(tidy_log)
    try:
        state.wait_for_everyone()  # the main process holds the folder and has tidied it: now every process reads it
        # Before anything trains (a chained SFT stage included): a run in the folder is continued only with its own
        # recipe, and replaced only when asked.
        if cfg.resume:
            check_same_recipe(output_dir, resolved, "resume=true")
            check_same_processes(output_dir, state.num_processes)
        elif not cfg.overwrite:
            refuse_existing_run(RunDir(output_dir))
        # Where training starts: a base, an adapter to continue, or an SFT stage trained first.
        if chained:
            start_adapter: Path | None = run_sft_stage(cfg, output_dir)
        else:
            start_adapter = adapter_dir(cfg.method.init_adapter) if cfg.method.init_adapter else None
    except BaseException:
        if held is not None:
            held.close()
        raise
    # Run folder: claimed (and locked) before anything heavy, so a refused overwrite costs nothing. A run killed
    # before its first checkpoint starts again under resume=true (a chained run's SFT stage, in output_dir/sft, stays).
    run = prepare_run_dir(output_dir, overwrite=cfg.overwrite, resume=cfg.resume, is_main=is_main, lock=held)
    state.wait_for_everyone()  # the main process has cleared / created the folder
    handler = add_file_logging(run, earlier=tidy_log.buffer) if is_main else None
    if run.resume_from:
        log.info("resuming from %s", run.resume_from)
    tracker: Tracker | None = None
    try:
        at_end = checkpoint_at_end(cfg, run)
        done = finished_metrics(run) if at_end else None
        if done is not None:  # a requeue script that always resumes: training on would step past the end
            log.info("the run in %s already finished at step %s: nothing to train", run.path, done.get("global_step"))
            return TrainResult(run_dir=run.path, metrics=done, trainer=None)
        # at_end and not finished: killed after its last checkpoint, before its adapter and metrics.json: finish it
        # Tokenizer and data first: a bad row fails before the model loads.
        with state.main_process_first():  # tiny-ko is built once, by the main process (only rank 0 may save)
            source, is_local = model_source(cfg.model)
        check_remote_code(cfg.model, source, is_local)
        # the hub base's commit, resolved once: the tokenizer and the weights load from it, and the run records it
        # (a resumed run: the commit it started on; a chained run: its SFT stage's). None for a local folder.
        continues = run.path if run.resume_from else start_adapter.parent if chained else None
        commit = base_commit(source, cfg.model.revision, continues)
        at_commit = dataclasses.replace(cfg.model, revision=commit) if commit else cfg.model
        check_attention(cfg.model, device, trains_all=full_model, autocast=precision != "no")
        check_kernels(cfg.model, source, device, cfg.method.kernels, commit)  # its architecture, from its config
        if start_adapter is not None:  # another base or revision is refused before the data and the weights load
            check_adapter_base(start_adapter, source, cfg.model.name_or_path, cfg.model.revision, commit)
            if method is grpo and run.resume_from is not None:  # and a starting adapter changed since (its reference)
                from training.grpo_reference import check_resumed_reference

                check_resumed_reference(run.resume_from, start_adapter)
        tokenizer = load_tokenizer(at_commit, source)
        # a resume on changed files or another dataset is refused as the rows load: before they render, and before
        # the rendered set the run would resume from is replaced
        same_sources = (lambda sources: check_same_data(run, {"sources": sources})) if run.resume_from else None
        data = method.build_data(cfg, tokenizer, end_of_turn_id(cfg.model, tokenizer), run.path / RENDERED,
                                 same_sources)
        log.info("data %s: %s", cfg.data.name, {k: v for k, v in data.summary.items() if k != "sources"})
        if run.resume_from is not None:
            check_same_data(run, data.summary)  # the held-out rows, known once rendering has kept them
        check_eval_left(cfg, data.summary, "method.grpo.max_prompt_length" if cfg.method.name == "grpo" else
                        "method.sft.max_length")  # an eval split the skipped rows emptied: before the model loads

        zero3 = zero3_init(precision) if cfg.peft.quantization is None else None
        model = load_base_model(dataclasses.replace(cfg, model=at_commit), source, device, trains_all=full_model,
                                autocast=precision != "no")
        if start_adapter is not None:
            model, peft_config = load_adapter(model, start_adapter, source, cfg.model.name_or_path,
                                              cfg.model.revision, commit), None
        else:
            peft_config = lora_config(cfg.peft, model, commit)

        # Record what this run is before it trains.
        model_info = {"name_or_path": cfg.model.name_or_path, "source": source, "local": is_local,
                      "revision": cfg.model.revision,
                      "loaded_revision": commit,  # the commit model.revision named as the weights loaded
                      # absolute: publish reads it from wherever it runs
                      "start_adapter": str(Path(start_adapter).resolve()) if start_adapter else None}
        if start_adapter is not None:  # the settings it trains with: its own, whatever the recipe's peft says
            model_info["start_adapter_settings"] = continued_settings(start_adapter, cfg.peft)
        runtime = runtime_settings(cfg, model, device)
        log.info("runtime: %s", runtime)
        prov = resume_provenance(provenance(seed=cfg.seed, data=data.summary, model=model_info,
                                            resumed_from=run.resume_from, processes=state.num_processes,
                                            runtime=runtime), run)
        if is_main:
            write_atomic(run.path / "config.yaml", yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False))
            write_json(run.path / "provenance.json", prov)
        tracker = open_tracker(cfg.tracking, run, cfg.name, {"config": resolved, "provenance": prov}, is_main)

        trainer = method.build_trainer(cfg, model, tokenizer, data, peft_config,
                                       trainer_args(cfg, run, device, tracker.report_to, model.config.model_type))
        del zero3  # the trainer's own arguments hold ZeRO-3's settings from here
        upcast_trainable(trainer, precision)  # peft.modules_to_save's copies: fp32 under autocast, as LoRA's are
        if cfg.eval.every_n_steps:
            from training.evaluation.callback import SUITE_MARKER, SuiteCallback, check_suite_window, context_window

            # the thinking limit against the model's window: now, not as an error at every suite step
            check_suite_window(cfg.eval, suite_modes, context_window(model), cfg.model.name_or_path)
            suite = SuiteCallback(cfg.eval, tokenizer, stop_ids(cfg.model, tokenizer))
            suite.trainer = trainer
            trainer.add_callback(suite)
        if cfg.method.name == "sft":
            trainer.add_callback(ResumedTokenCount(trainer))
        clock, wall = ResumedTrainTime(), RunWallTime(started)
        trainer.add_callback(clock)
        trainer.add_callback(wall)
        trainer.add_callback(TrainedForEpochs(cfg.method.num_train_epochs))
        run.drop_replaced()  # data, model and trainer are ready: the run this one replaces (overwrite=true) goes
        sigterm = StopOnSigterm()  # installed until metrics.json is written: a stop after the last step waits
        if cfg.eval.every_n_steps:
            suite.stop, suite.resume = sigterm, cfg.resume  # a run stopped at its last step leaves the suite to
            # its resumption
        try:
            trainer.add_callback(sigterm)
            workers_ignore_sigterm(trainer)  # SIGTERM to the process group: the workers leave it to this process
            output = finish_at_checkpoint(trainer, run.resume_from, sigterm.no_step_left) if at_end else None
            if output is None:
                output = trainer.train(resume_from_checkpoint=trainer.args.resume_from_checkpoint)
            early = trainer.state.global_step < trainer.state.max_steps
            if (sigterm.stopped_at is not None and early) or sigterm.stops_run(cfg.resume):
                # At the last step too: the resumed (or requeued) job finishes from the checkpoint in its own time,
                # end suite included. Only a warning submitit cannot requeue without resume=true finishes it here.
                checkpoint = run.checkpoints / f"checkpoint-{sigterm.stopped_at}"
                sigterm.hand_over(cfg.resume, checkpoint)  # submitit's warning: rank 0 requeues the job and exits
                raise StoppedBySignal(f"stopped by {sigterm.signal_name} at step {sigterm.stopped_at}, with a "
                                      f"checkpoint ({checkpoint})", fix=resume_fix(run.path))
            if data.eval is not None and not any(h.get("step") == trainer.state.global_step and "eval_loss" in h
                                                 for h in trainer.state.log_history):
                trainer.evaluate()
            _save_final(trainer, run, full_model=full_model)
            metrics = summarize(trainer, output, data.summary, started, clock.earlier, wall.earlier)
            if is_main:
                write_json(run.path / "metrics.json", metrics)
                remove_rendered(run.path)  # nothing resumes from it now
                if cfg.eval.every_n_steps:  # the end suite's marker: every process read it before _save_final's barrier
                    remove_markers(run.checkpoints / SUITE_MARKER)
            tracker.finish(run)  # under the handler still: a SIGTERM in a slow (online) finish lets wandb close
        finally:
            sigterm.restore()
        log.info("done: %s (train loss %s -> %s, eval loss %s)", run.path, metrics["first_train_loss"],
                 metrics["last_train_loss"], metrics["eval_loss"])
        sigterm.stop_after_the_finish(run.path)  # a SIGTERM after the last step: the run finished first
        return TrainResult(run_dir=run.path, metrics=metrics, trainer=trainer)
    except BaseException as e:  # out of memory, Ctrl-C: the tracker run is closed as failed; one stopped by a
        # signal with a checkpoint (SIGTERM, SLURM's warning, submitit's requeue: SystemExit) as preempted
        if tracker is not None:
            tracker.finish(run, failed=True, stopped=isinstance(e, (StoppedBySignal, SystemExit)))
        if is_main:
            run.restore_replaced()  # failed before it got under way: the run it was to replace comes back
        raise
    finally:
        run.release()
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
