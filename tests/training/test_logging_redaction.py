"""kosov's log handlers (the terminal's, setup_logging; train.log's, add_file_logging) in a process of their own:
a library's log call with arguments that do not fit its format is reported and the program goes on, as with plain
logging; and no secret reaches either through a logged exception or stack."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TOKEN = "hf_SECRETSECRET0123456789"
KEY = "sk-judge-0123456789"

SETUP = """\
import logging, os, sys
from pathlib import Path
from training.console_log import setup_logging
from training.run_dir import RunDir, add_file_logging

setup_logging()
add_file_logging(RunDir(Path(sys.argv[1])))
log = logging.getLogger("kosov.test")
"""


def logged(tmp_path: Path, script: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run SETUP then `script` (from a file: tracebacks show its lines) with HF_TOKEN set; the process and its
    train.log."""
    path = tmp_path / "logs.py"
    path.write_text(SETUP + textwrap.dedent(script), encoding="utf-8")
    env = {**os.environ, "HF_TOKEN": TOKEN, "KOSOV_LOG_LEVEL": "INFO",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(path), str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=120)
    return done, (tmp_path / "train.log").read_text(encoding="utf-8")


def test_a_log_call_whose_arguments_do_not_fit_is_reported_and_the_program_goes_on(tmp_path):
    """A library's formatting slip raised TypeError at its log call: in a callback, it ended a long run. Plain
    logging reports it ("--- Logging error ---", the message and its arguments) and goes on; the arguments it prints
    keep their secrets hidden."""
    done, train_log = logged(tmp_path, """\
        logging.getLogger("somelib").warning("could not open %s", "a.txt", os.environ["HF_TOKEN"])
        log.warning("still logging")
        print("went on")
        """)
    assert done.returncode == 0 and "went on" in done.stdout, done.stderr
    assert "--- Logging error ---" in done.stderr and "not all arguments converted" in done.stderr
    assert "Message: 'could not open %s'\nArguments: ('a.txt', '***')" in done.stderr
    assert "still logging" in done.stderr and "still logging" in train_log
    assert TOKEN not in done.stderr + train_log


def test_secrets_in_a_logged_exception_or_stack_are_masked_on_the_terminal_and_in_train_log(tmp_path):
    """log.exception (an eval suite's judge failing, say) printed the traceback as it was: the exception's message
    with the judge's credentialed URL and the environment's token. stack_info likewise."""
    done, train_log = logged(tmp_path, """\
        try:
            raise RuntimeError(f"GET https://kosov:sk-judge-0123456789@judge.example/v1 failed ({os.environ['HF_TOKEN']})")
        except RuntimeError:
            log.exception("suite %s at step %d failed; training goes on", "quick", 10)
        log.warning("judge stack", stack_info=True)  # judge at https://kosov:sk-judge-0123456789@judge.example/v1
        """)
    assert done.returncode == 0, done.stderr
    for output in (done.stderr, train_log):
        assert "suite quick at step 10 failed; training goes on\nTraceback (most recent call last):" in output
        assert "RuntimeError: GET https://***@judge.example/v1 failed (***)" in output
        assert "Stack (most recent call last):" in output and "# judge at https://***@judge.example/v1" in output
        assert TOKEN not in output and KEY not in output


def test_an_exception_listing_many_urls_is_masked_in_linear_time():
    """An exception naming thousands of endpoints without spaces between them ("http://gpu1:8000/v1,http://gpu2:...")
    took seconds per log record to mask (quadratic: 'http://a:b' * 8000 took 60 s); credentials are still masked."""
    import time

    from training.redaction import redact_text

    endpoints = ",".join(f"http://gpu{i}:8000/v1" for i in range(4000)) + ",https://kosov:sk-judge-0123@judge.example/v1"
    started = time.perf_counter()
    masked = redact_text(endpoints), redact_text("http://a:b" * 8000)
    assert time.perf_counter() - started < 15  # a hang guard, not a speed target: linear takes well under a second
    assert "sk-judge" not in masked[0] and masked[0].endswith("***@judge.example/v1")
    assert masked[0].startswith("http://gpu0:8000/v1,http://gpu1:8000/v1")  # what holds no credential stays readable


def test_a_record_with_a_malformed_exc_info_does_not_end_the_program_at_the_log_call():
    import logging

    from training.redaction import RedactingFilter

    record = logging.makeLogRecord({"msg": "hi", "exc_info": True, "levelno": logging.WARNING})
    assert RedactingFilter().filter(record) is True  # the handler reports it, as logging does without the filter
