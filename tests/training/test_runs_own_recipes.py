"""resume=true without output_dir, on recipes of the user's own folder (--config-dir, hydra.searchpath): refused as on
kosov's recipes, naming the experiment's latest folders with checkpoints. It went to a new timestamped folder and
trained from step 0 (kosov composed only its own recipes before Hydra ran the command)."""

from __future__ import annotations

import pytest

from tests.training.test_run_folder import kosov

MINE = """# @package _global_
defaults:
  - override /data: ko-chat-seed
name: mine
data:
  max_rows: 24
method:
  max_steps: 1
"""


@pytest.fixture
def stopped_run(tmp_path):
    """A folder of recipes of the user's (experiment=mine) and the folder of a run of it with a checkpoint."""
    (tmp_path / "my_recipes" / "experiment").mkdir(parents=True)
    (tmp_path / "my_recipes" / "experiment" / "mine.yaml").write_text(MINE)
    run = tmp_path / "outputs" / "mine" / "2026-01-01_00-00-00"
    (run / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-1" / "trainer_state.json").write_text('{"global_step": 1}')
    return run


@pytest.mark.parametrize("recipes", [["-cd", "my_recipes"], ["--config-dir=my_recipes"],
                                     ["hydra.searchpath=[file://my_recipes]"]])
def test_resume_without_output_dir_on_the_users_own_recipes_is_refused(tmp_path, stopped_run, recipes):
    done = kosov("train", *recipes, "experiment=mine", "resume=true", cwd=tmp_path, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "resume=true continues the run in output_dir, but no output_dir was given" in done.stderr
    assert f"the latest with checkpoints in outputs/mine: {stopped_run}" in done.stderr
    assert [p.name for p in stopped_run.parent.iterdir()] == [stopped_run.name]  # no new folder, nothing trained


def test_a_sweep_on_the_users_own_recipes_is_refused_too(tmp_path, stopped_run):
    done = kosov("train", "-m", "-cd", "my_recipes", "experiment=mine", "peft.r=4,8", "resume=true", cwd=tmp_path,
                 timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "resume=true continues the sweep's jobs in their folders" in done.stderr
    assert [p.name for p in stopped_run.parent.iterdir()] == [stopped_run.name]


def test_the_users_recipes_still_print_and_a_broken_one_is_left_to_hydra(tmp_path, stopped_run):
    shown = kosov("train", "-cd", "my_recipes", "experiment=mine", "resume=true", "--cfg", "job", cwd=tmp_path)
    assert shown.returncode == 0 and "name: mine" in shown.stdout, shown.stderr[-3000:]
    (tmp_path / "my_recipes" / "experiment" / "broken.yaml").write_text("# @package _global_\nnot_a_key: 1\n")
    broken = kosov("train", "-cd", "my_recipes", "experiment=broken", "resume=true", cwd=tmp_path)
    assert broken.returncode != 0 and "not_a_key" in broken.stderr, broken.stderr[-3000:]
