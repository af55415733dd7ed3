"""GRPO's prompt rows as the datasets.Dataset TRL takes: the prompt and every other column of the rows (the rewards
read them as keyword arguments), typed so that Arrow can hold them, or an error naming the column and the row."""

from __future__ import annotations

import logging
from typing import Any

from training.errors import KosovError

log = logging.getLogger(__name__)

# TRL 1.16 (GRPOTrainer._calculate_rewards) calls each reward with prompts=, completions=, completion_ids= and every
# column but prompt, completion and completion_ids, then sets trainer_state, log_extra, log_metric and environments
# itself: a column of one of these names never reaches a reward (prompts, completions: "got multiple values for
# keyword argument" at the first reward call, after the model loaded; the others: replaced by TRL's)
TRL_ARGUMENTS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments")
# a prompt-completion row's reference answer (TRL's standard format): GRPO generates its own, TRL keeps it from the
# rewards, and so does kosov, saying so
REFERENCE = "completion"
SCALARS = (str, int, float, bool)


def columns(kept: list) -> dict[str, list]:
    """The prompt rows as columns: every column any row has (None where a row lacks it). A column holding numbers
    in some rows and text in others ("answer": 1200, "answer": "3/4") becomes text, as the rewards read it; any
    other mix of types is an error naming the first row that differs. A column named like an argument TRL gives
    every reward itself is an error naming it and the first row that has it."""
    names = list(dict.fromkeys(k for row in kept for k in row.columns))
    clash = next((name for name in names if name in TRL_ARGUMENTS), None)
    if clash is not None:
        raise KosovError(f"the prompt rows have a column {clash!r}, the name of an argument TRL's GRPOTrainer gives "
                         f"every reward itself ({', '.join(TRL_ARGUMENTS)}): no reward could read it",
                         where=next(row.where for row in kept if clash in row.columns),
                         fix=f"rename the column in the data (e.g. to 'ref_{clash}'), or drop it")
    if REFERENCE in names:
        log.info("the prompt rows' %r column is not given to the rewards: GRPO generates its own completions (TRL "
                 "keeps it out too)", REFERENCE)
        names.remove(REFERENCE)
    found = {"prompt": [row.messages for row in kept]}
    for name in names:
        values = [row.columns.get(name) for row in kept]
        kinds = [type(v) for v in values if v is not None]
        if len(set(kinds)) > 1:
            if not set(kinds) <= set(SCALARS):
                index = next(i for i, v in enumerate(values) if v is not None and type(v) is not kinds[0])
                raise KosovError(f"column {name!r} is {kinds[0].__name__} in earlier rows but "
                                 f"{type(values[index]).__name__} here", where=kept[index].where,
                                 fix=f"give {name!r} the same type in every row")
            values = [None if v is None else str(v) for v in values]
        found[name] = values
    return found


def prompt_dataset(kept: list) -> Any:
    """The rows as a datasets.Dataset. Values Arrow cannot put in one column (nested ones whose inner types differ:
    "info": {"unit": 3} in one row, {"unit": "원"} in another) are an error naming the column and the first row
    that does not fit."""
    import datasets
    import pyarrow as pa

    found = columns(kept)
    try:
        return datasets.Dataset.from_dict(found)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        for name, values in found.items():
            row = _first_misfit(values)
            if row is not None:
                raise KosovError(f"column {name!r} holds values of different types across rows (here: "
                                 f"{values[row]!r}): {e}", where=kept[row].where,
                                 fix=f"give {name!r} the same structure in every row, with values of one type at "
                                     "each key (or store it as JSON text)") from None
        raise


def _first_misfit(values: list) -> int | None:
    """The first row from which the column's values no longer fit one Arrow type (None: they all fit), by bisection
    on the prefixes that fit."""
    from datasets.arrow_writer import TypedSequence
    import pyarrow as pa

    def fits(end: int) -> bool:
        try:
            pa.array(TypedSequence(values[:end]))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return False
        return True

    if fits(len(values)):
        return None
    low, high = 0, len(values)  # values[:low] fit, values[:high] do not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return high - 1
