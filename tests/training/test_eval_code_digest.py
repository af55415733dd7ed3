"""The score cache's code digest covers every module that grades kosov's own evals: a kosov upgrade that changes
only the hedge rules (data_tools.math_hedges) must not reuse scores graded under the old ones."""

from __future__ import annotations

import ast
from pathlib import Path

import data_tools.math_grader
from training.evaluation import generative


def test_every_data_tools_module_the_grader_imports_is_in_the_code_digest(monkeypatch, tmp_path):
    tree = ast.parse(Path(data_tools.math_grader.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("data_tools.")}
    assert "data_tools.math_hedges" in imported
    for module in sorted(imported):
        generative.code_digest.cache_clear()  # computed once a process
        before = generative.code_digest()
        real = Path(__import__(module, fromlist=["_"]).__file__)
        copy = tmp_path / real.name
        copy.write_bytes(real.read_bytes() + b"\n# changed\n")
        monkeypatch.setattr(f"{module}.__file__", str(copy))
        generative.code_digest.cache_clear()
        assert generative.code_digest() != before, f"{module} is not in the eval cache's code digest"
        monkeypatch.undo()
    generative.code_digest.cache_clear()
