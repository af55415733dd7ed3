"""kosov's log on the terminal: rich on a terminal, plain unwrapped lines when piped (CI, SLURM logs, tests), secrets
masked; KOSOV_LOG_LEVEL sets how much (a level name or a number; INFO by default)."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("kosov")


def setup_logging() -> None:
    """Log to stderr: rich on a terminal, plain unwrapped lines when piped (CI, SLURM logs, tests)."""
    level, bad = log_level(os.environ.get("KOSOV_LOG_LEVEL", "INFO"))
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(stderr=True), show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    from training.redaction import RedactingFilter

    handler.addFilter(RedactingFilter())  # the terminal too: wandb's console capture uploads it
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if bad:
        log.warning("KOSOV_LOG_LEVEL=%s is not a log level (DEBUG, INFO, WARNING, ERROR or a number): logging at INFO",
                    bad)
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "fsspec", "alembic"):  # alembic: Optuna's
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_level(value: str) -> tuple[int, str | None]:
    """KOSOV_LOG_LEVEL as a level (a name, any case, or a number), and the value itself when it is neither (INFO
    then: a typo in an environment variable must not stop every command)."""
    value = value.strip()
    if value.isdigit():
        return int(value), None
    level = logging.getLevelName(value.upper())
    return (level, None) if isinstance(level, int) else (logging.INFO, value)
