"""benchmarks/device/run.sh dry-run with a fake python3: stage order, the budget, a failed check, a killed call."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.benchmark_helpers import ROOT


FAKE_PYTHON = r"""#!/usr/bin/env bash
# python3 for a dry run of run.sh: a benchmark appends a table to --results (or hangs, as a stage killed at the
# call's limit does), check exits with FAKE_CHECK_RC, pytest prints a summary.
case "$1" in
  -) cat >/dev/null; echo "python (fake)"; exit 0 ;;
  -c) echo "check (fake)"; exit "${FAKE_CHECK_RC:-0}" ;;
  -m) echo "$* (fake)"; echo "1 passed (fake)"; exit 0 ;;
esac
what=sft; results=
while [ $# -gt 0 ]; do
  case $1 in --grpo) what=grpo ;; --qlora) what=qlora ;; --results) results=$2; shift ;; esac; shift
done
if [ "$what" = "${FAKE_HANG:-}" ]; then echo $$ > "$FAKE_DIR/hanging"; exec sleep 300; fi
printf '\n### %s table\n' "$what" >> "$results"
"""


def dry_run(tmp_path: Path, *stages: str, **env: str) -> tuple[subprocess.Popen, Path]:
    """run.sh on this machine with a fake python3 and no kit: its own process group, its $OUT returned."""
    fake, out, site = tmp_path / "bin", tmp_path / "out", tmp_path / "site"
    for folder in (fake, out, site, tmp_path / "kit"):
        folder.mkdir(exist_ok=True)
    (fake / "python3").write_text(FAKE_PYTHON)
    (fake / "python3").chmod(0o755)
    (site / ".kit-stamp").write_text("dry\n")
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "OUT": str(out), "KOSOV_SITE": str(site),
           "KIT_DIR": str(tmp_path / "kit"), "KOSOV_LOGS": str(tmp_path / "logs"),
           "KOSOV_RESULTS": str(tmp_path / "results.md"), "KOSOV_TMP": str(tmp_path / "tmp"),
           "FAKE_DIR": str(tmp_path), **env}
    process = subprocess.Popen(["bash", "benchmarks/device/run.sh", *stages], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    return process, out


def test_the_device_script_runs_the_targets_first_within_the_budget_and_tests_last(tmp_path):
    """15 minutes of device time in all: what is least measured comes first, a stage that cannot finish in what is
    left of RUN_BUDGET_S is skipped (not killed half-way), and so is every stage after it, and no stage's limit
    passes the budget."""
    process, out = dry_run(tmp_path, "all", RUN_BUDGET_S="250")
    log = process.communicate(timeout=120)[0]
    assert process.returncode == 0, log
    env = (out / "env.log").read_text()
    assert "stages: check sft-b4 grpo tests qlora sft" in env
    order = [line.split()[1].rstrip(":") for line in env.splitlines() if line.startswith("=== ") and "rc=" in line]
    assert order == ["check", "sft-b4"]  # grpo needs 240 s: more than the call had; what follows waits for call 2
    assert "=== grpo: skipped, " in env and "(it needs 240s)" in env
    for stage in ("tests", "qlora", "sft"):
        assert f"=== {stage}: skipped, grpo before it was skipped for time" in env
    limits = [int(line.split("limit ")[1].split("s)")[0]) for line in log.splitlines() if "(limit " in line]
    assert limits and max(limits) <= 250 - 20
    assert "### sft table" in (out / "RESULTS.gpu.md").read_text()  # sft-b4's


def test_after_a_stage_skipped_for_time_a_smaller_one_after_it_is_skipped_too(tmp_path):
    """qlora (120 s) fits where the tests (260 s) do not; run, it would spend the time a second call needs for the
    tests, and that call would run them after it. Both wait for the next call, in their order."""
    process, out = dry_run(tmp_path, "tests", "qlora", RUN_BUDGET_S="250")
    log = process.communicate(timeout=120)[0]
    assert process.returncode == 0, log
    env = (out / "env.log").read_text()
    assert "=== tests: skipped, 2" in env and "(it needs 260s)" in env
    assert "=== qlora: skipped, tests before it was skipped for time" in env
    assert "rc=" not in env and not (out / "qlora.log").exists()
    assert "### qlora table" not in (out / "RESULTS.gpu.md").read_text()


def test_the_gpu_tests_run_the_training_file_before_grpos(tmp_path):
    """FlexAttention's evaluation and generation (test_gpu_training.py) is the next session's question: its file
    goes first (pytest keeps the files in the order given), and with time for the FlexAttention compiles."""
    process, out = dry_run(tmp_path, "tests", RUN_BUDGET_S="279")
    log = process.communicate(timeout=120)[0]
    assert process.returncode == 0, log
    assert "=== tests: skipped" in (out / "env.log").read_text()  # 279 - 20 s kept back < the 260 s it needs
    process, out = dry_run(tmp_path, "tests", RUN_BUDGET_S="570")
    log = process.communicate(timeout=120)[0]
    assert process.returncode == 0, log
    ran = (out / "tests.log").read_text()
    assert "-m pytest tests/gpu/test_gpu_training.py tests/gpu/test_gpu_grpo.py -q" in ran  # the fake echoes them


def test_a_stage_leaves_the_next_one_the_time_it_needs(tmp_path):
    """sft-b4's own limit (270 s) used to be capped only by what was left: a slow FlexAttention compile could then
    skip the GRPO target stage after it."""
    process, out = dry_run(tmp_path, "sft-b4", "grpo", RUN_BUDGET_S="500")
    log = process.communicate(timeout=120)[0]
    assert process.returncode == 0, log
    limits = {line.split()[1]: int(line.split("limit ")[1].split("s)")[0]) for line in log.splitlines()
              if "(limit " in line}
    assert limits["sft-b4"] <= 500 - 20 - 240 - 20 and limits["grpo"] >= 240


def test_a_failed_check_skips_the_stages_that_would_fail_the_same_way(tmp_path):
    process, out = dry_run(tmp_path, "check", "sft", FAKE_CHECK_RC="1", RUN_BUDGET_S="900")
    assert "RUN_BUDGET_S=900: the device runs a command 600 s at most; keeping to 570" in process.communicate(
        timeout=120)[0]
    env = (out / "env.log").read_text()
    assert "=== check: rc=1" in env and "=== sft: skipped, check failed" in env
    assert not (out / "sft.log").exists()


def test_tables_finished_before_a_call_is_killed_come_back(tmp_path):
    """The device kills a command at its limit with SIGKILL (rc 137): no exit trap runs, so each finished stage's
    table and log must already be in $OUT."""
    process, out = dry_run(tmp_path, "sft", "grpo", FAKE_HANG="grpo")
    deadline = time.time() + 60
    while not (tmp_path / "hanging").exists() and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # bash and tee; `timeout` keeps its own process group:
    os.kill(int((tmp_path / "hanging").read_text()), signal.SIGKILL)  # the hanging stage
    process.communicate(timeout=30)
    assert "### sft table" in (out / "RESULTS.gpu.md").read_text()
    assert "=== sft: rc=0" in (out / "sft.log").read_text() and "=== sft: rc=0" in (out / "env.log").read_text()
    assert "=== grpo (limit" in (out / "grpo.log").read_text()  # the killed stage's log so far
