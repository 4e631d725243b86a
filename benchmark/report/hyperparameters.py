"""Where a method's hyperparameters came from, as the table's footnotes say it: config values, or a search on
validation data (its protocol, trials and chosen values), read from ``<run>/tuning/<method>/search.json`` or the
summaries (:mod:`audio_ticl.benchmark.tuning` writes both)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..summary import read_json_object

if TYPE_CHECKING:
    from .collect import MethodRun

#: where the runner keeps a method's hyperparameter search (``benchmark.tuning``)
TUNING = "tuning"
SEARCH_FILE = "search.json"


def search_record(run: MethodRun) -> dict | None:
    """The method's hyperparameter search: ``<run>/tuning/<method>/search.json`` if present, else the ``search``
    record the runner keeps in the summary's ``hyperparameters``, else None."""
    path = run.run_dir / TUNING / run.name / SEARCH_FILE
    if path.is_file():
        return read_json_object(path)
    for s in run.seeds:
        record = (s.hyperparameters or {}).get("search")
        if isinstance(record, dict):
            return record
    return None


def hyperparameter_source(run: MethodRun) -> str:
    """``search`` if any seed used searched values, else the seeds' common source (``config`` by default)."""
    sources = {str((s.hyperparameters or {}).get("source") or "config") for s in run.seeds}
    if "search" in sources:
        return "search"
    return sources.pop() if len(sources) == 1 else "/".join(sorted(sources))


CONFIG_NOTE = "values from the config, not searched"


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def hyperparameter_note(run: MethodRun) -> str:
    """Where a method's hyperparameters came from: for searched values the protocol, the trials and the chosen
    values (and any chosen value its summaries contradict); else "values from the config, not searched"."""
    source = hyperparameter_source(run)
    if source == "config":
        return CONFIG_NOTE
    if source == "search trial":
        return "the values of one search trial, evaluated on validation data (not a reported run)"
    if source != "search":
        return f"of source '{source}'"
    record = search_record(run)
    if record is None:
        return (f"searched, but neither {TUNING}/{run.name}/{SEARCH_FILE} nor its summary keeps the search record; "
                "the values used: " + ", ".join(f"{k}={_value(v)}" for k, v in
                                                  (run.seeds[0].hyperparameters.get("train") or {}).items()))
    protocol = str(record.get("protocol", "unknown"))
    if protocol == "first_tasks" and record.get("first_tasks"):
        protocol += f", the first {record['first_tasks']} tasks"
    elif protocol == "full":
        protocol += ", every task"
    parts = [f"protocol {protocol}"]
    trials = record.get("trials")
    n = len(trials) if isinstance(trials, list) else record.get("n_trials")
    if n is not None:
        parts.append(f"{n} trials" + (f" (budget {record['budget']})" if record.get("budget") is not None else ""))
    if record.get("metric"):
        parts.append(f"score: {record['metric']}")
    chosen = record.get("chosen") or {}
    text = f"searched on validation data ({'; '.join(parts)}); chosen: " + (
        ", ".join(f"{k}={_value(v)}" for k, v in chosen.items()) or "nothing")
    differ = []
    for key, value in chosen.items():
        for s in run.seeds:
            try:
                used = lookup(s.hyperparameters or {}, key)
            except KeyError:
                continue
            if used != value:
                differ.append(f"seed {s.seed} used {key}={_value(used)}")
    if differ:
        text += " (but " + ", ".join(dict.fromkeys(differ)) + ")"
    return text


def lookup(hyperparameters: dict, dotted: str) -> Any:
    """``train.lr`` -> hyperparameters["train"]["lr"]; KeyError if it is not there."""
    value: Any = hyperparameters
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value
