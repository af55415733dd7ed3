"""Eval during training under DDP: the suite runs on the main process alone, and the other processes wait for it by
watching for a file, not in a collective that times out. A real 2-process run on CPU (accelerate launch, gloo)."""

from __future__ import annotations

import json
import sys

from tests.training.test_scale_out import ACCELERATE, run

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
    script = tmp_path / "slow_suite.py"
    script.write_text(SLOW_SUITE)
    out = tmp_path / "run"
    done = run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE / "cpu-ddp.yaml"),
                str(script), "train", "experiment=smoke-sft", f"output_dir={out}", "method.max_steps=2",
                "data.max_rows=16", "eval=smoke", "eval.every_n_steps=2", "eval.math.limit=2",
                "eval.language.limit=2"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 2
    assert done.stderr.count("waiting for the main process: running the eval suite smoke at step 2") == 1  # the other process
    # the suite's scores were logged once, at its step (the end of training, the same step, runs none again)
    [state] = out.glob("checkpoints/checkpoint-2/trainer_state.json")
    suites = [h for h in json.loads(state.read_text())["log_history"] if "suite/ko_mini_bench" in h]
    assert [h["step"] for h in suites] == [2]
