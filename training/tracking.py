"""Experiment tracking: wandb (online, or offline by itself when no API key is configured), tensorboard, none.

The tracker run is opened here, before the trainer exists, so it carries the kosov recipe and provenance;
the transformers callbacks then log into the same run. Only the main process opens a tracker run.
"""

from __future__ import annotations

import json
import logging
import netrc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from training.schema import TrackingConfig
from training.errors import KosovError
from training.redaction import redact, redact_text
from training.run_dir import RunDir
from training.safe_write import write_json
from training.sweep_jobs import STOPPED_EXIT  # kosov's exit status for a run stopped by a signal (StoppedBySignal)

log = logging.getLogger(__name__)


def wandb_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(tcfg: TrackingConfig) -> str:
    if tcfg.mode != "auto":
        return tcfg.mode
    if os.environ.get("WANDB_MODE") in ("online", "offline", "disabled"):
        return os.environ["WANDB_MODE"]
    return "online" if wandb_key_configured() else "offline"


@contextmanager
def redacted_argv() -> Iterator[None]:
    """sys.argv redacted while wandb reads it: wandb stores the command line (sys.argv[1:], the run's "args") in the
    run and uploads it, and its Settings have no switch for that alone. A teacher's or judge's
    base_url=https://user:key@host, or a secret-named override, would reach wandb in clear."""
    saved = sys.argv
    sys.argv = [redact_text(arg) for arg in saved]
    try:
        yield
    finally:
        sys.argv = saved


@dataclass
class Tracker:
    backend: str
    report_to: list[str]
    run: Any = None  # the wandb run, when there is one

    def finish(self, run_dir: RunDir, failed: bool = False, stopped: bool = False) -> None:
        """Close the tracker run; `failed`: the job stopped with an error (wandb shows the run as failed), unless
        `stopped`: a signal stopped it with a checkpoint to resume from (SIGTERM, SLURM's warning and requeue), which
        wandb is told is a preemption, not a failure."""
        if self.run is None:
            return
        run = self.run
        if run.settings.mode == "disabled":  # nothing was tracked, and no folder was written
            run.finish()
            self.run = None
            return
        offline = run.settings.mode == "offline" or getattr(run, "offline", False)
        run_path, url = Path(run.dir).parent, getattr(run, "url", None)
        # wandb writes one offline folder per segment of a resumed run, all under the run's id: `wandb sync` uploads
        # them, in order, into the one run
        segments = " ".join(str(p) for p in sorted(run_path.parent.glob(f"offline-run-*-{run.id}")))
        if stopped:
            run.mark_preempting()  # with a non-zero exit: preempted, resumable (wandb's contract for preemption)
        with redacted_argv():  # wandb reads the command line again at the end where it makes a job of the run
            run.finish(exit_code=STOPPED_EXIT if stopped else 1 if failed else None)
        self.run = None
        if stopped:
            log.info("wandb run %s closed as preempted: resume=true continues it", run_path)
        elif failed:
            log.info("wandb run %s closed as failed", run_path)
        elif offline:
            log.info("wandb ran offline; the run is in %s. Upload it later with: wandb sync %s", run_path,
                     segments or run_path)
        else:
            log.info("wandb run: %s", url or run_path)


def _open_wandb(tcfg: TrackingConfig, run_dir: RunDir, name: str, payload: dict[str, Any]) -> Any:
    import wandb

    mode = wandb_mode(tcfg)
    state_file = run_dir.path / "wandb_run.json"
    previous = json.loads(state_file.read_text()) if run_dir.resume_from and state_file.is_file() else {}
    try:
        with redacted_argv():
            run = wandb.init(project=tcfg.project, entity=tcfg.entity, name=name, dir=str(run_dir.path), mode=mode,
                             tags=list(tcfg.tags) or None, config=payload, id=previous.get("id"),
                             resume="allow" if previous else None,
                             reinit="finish_previous")  # a sweep's jobs share a process: never log into the last
            # job's run
    except Exception as e:  # wandb raises its own error types for auth and network
        raise KosovError(f"wandb could not start a run ({mode}): {e}",
                         fix="check WANDB_API_KEY / wandb login and the network, or use tracking.mode=offline") from None
    if run.settings.mode == "disabled":  # WANDB_MODE=disabled or tracking.mode=disabled: a stand-in run, no folder
        log.info("wandb is disabled: nothing is tracked and no wandb folder is written")
        return run
    write_json(state_file, {"id": run.id, "project": tcfg.project, "mode": mode})
    log.info("wandb %s run %s in %s%s", mode, run.id, run_dir.path / "wandb",
             " (resumed: the same run goes on)" if previous else "")
    return run


def _write_tensorboard_text(log_dir: Path, payload: dict[str, Any]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    for key, value in payload.items():
        writer.add_text(f"kosov/{key}", "```\n" + yaml.safe_dump(value, allow_unicode=True, sort_keys=False) + "```")
    writer.close()


def open_tracker(tcfg: TrackingConfig, run_dir: RunDir, name: str, payload: dict[str, Any],
                 is_main_process: bool = True) -> Tracker:
    """Set up the tracker; `payload` (recipe + provenance) goes into the tracker run, redacted."""
    payload = redact(payload)
    if tcfg.backend == "none":
        return Tracker("none", ["none"])
    if tcfg.backend == "tensorboard":
        log_dir = run_dir.path / "tensorboard"
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(log_dir)  # transformers 5 reads the folder from here
        if is_main_process:
            _write_tensorboard_text(log_dir, payload)
        return Tracker("tensorboard", ["tensorboard"])
    os.environ.setdefault("WANDB_LOG_MODEL", "false")  # adapters go to the run folder, not to wandb artifacts
    run = _open_wandb(tcfg, run_dir, name, payload) if is_main_process else None
    return Tracker("wandb", ["wandb"], run)
