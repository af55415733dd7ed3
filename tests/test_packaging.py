"""A non-editable install finds its recipes, the tiny-ko tokenizer, the corpus and the seed data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_recipes_assets_and_data(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path),
                            str(ROOT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("kosov-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("training/recipes/config.yaml", "training/recipes/experiment/smoke-sft.yaml",
                 "training/assets/tiny_ko_tokenizer/tokenizer.json", "training/assets/chat_templates/tiny_ko.jinja",
                 "data_tools/datasets/ko_chat_seed.jsonl", "data_tools/corpus/ko/news_prose.txt",
                 "training/cli.py", "data_tools/chat_io.py"):
        assert path in names, path
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "kosov = training.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    # Unpacked away from the checkout, the package composes a recipe from its own copy of the tree.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("from training.recipes import compose, recipes_dir; print(recipes_dir()); "
             "print(compose(['experiment=smoke-sft']).data.train_files[0])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(site / "training" / "recipes")
