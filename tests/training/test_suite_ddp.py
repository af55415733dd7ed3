"""Eval during training under DDP: the suite runs on the main process alone, and the other processes wait for it by
watching for a file, not in a collective that times out. A real 2-process run on CPU (accelerate launch, gloo)."""

from __future__ import annotations

import json

from tests.training.test_scale_out import launch_patched
from training.evaluation.callback import SUITE_MARKER

# The process group's timeout shortened to 15 s (it stands in for NCCL's 30 min) and the main process's suite made
# to take 25 s (an lm-eval suite on an 8B model takes longer than 30 min).
SLOW_SUITE = """
import sys, time
import training.train as T
from training.evaluation import callback as C
T.DDP_TIMEOUT_S = 15
run = C.SuiteCallback._run
def slow(self, state, model):
    if self._runs(state):
        time.sleep(25)
    return run(self, state, model)
C.SuiteCallback._run = slow
from training.cli import main
sys.exit(main())
"""


def test_a_suite_longer_than_the_process_groups_timeout_does_not_end_the_run(tmp_path):
    out = tmp_path / "run"
    done = launch_patched(SLOW_SUITE, tmp_path, f"output_dir={out}", "method.max_steps=2", "data.max_rows=16",
                          "eval=smoke", "eval.every_n_steps=2", "eval.math.limit=2", "eval.language.limit=2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 2
    assert done.stderr.count("waiting for the main process: running the eval suite smoke at step 2") == 1  # the other process
    # the suite's scores were logged once, at its step (the end of training, the same step, runs none again)
    [state] = out.glob("checkpoints/checkpoint-2/trainer_state.json")
    suites = [h for h in json.loads(state.read_text())["log_history"] if "suite/ko_mini_bench" in h]
    assert [h["step"] for h in suites] == [2]
    # the marker the other process waited on (and its heartbeat) went once both had read it: the run leaves none
    assert not [p.name for p in (out / "checkpoints").iterdir() if SUITE_MARKER in p.name]
