"""What every engine does to one record: ``signals()`` and/or ``attribute()``, turned into one row.

The row's values are exactly what :func:`explain.signals` and :func:`explain.attribute` return for
the same record and settings (scores copied as floats, reports as their JSON), so an audit row can
be checked against a direct call. A record that fails gets its error in the row; the run goes on.

Examples:
    >>> from explain.audit.work import score_names
    >>> score_names()[:2]
    ['mean_neg_logprob', 'max_neg_logprob']
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import time
from functools import lru_cache
from typing import Any, Mapping


from explain.attribution import attribute
from explain.audit.records import check_record
from explain.errors import WhylmError, one_line, report_internal_error
from explain.rng import seeded
from explain.evidence_view import evidence_json, n_unsupported
from explain.signals import load_calibration, score_docs, signals
from explain.signals.evidence import SCORE_DOCS as EVIDENCE_DOCS


def make_settings(model: str, signals: bool, method: str | None, seed: int, chat: bool = True,
                  max_new_tokens: int = 64, top_k: int = 5, calibration: Any = None) -> dict[str, Any]:
    """The settings a run is made with (and that a resumed run must match).

    Args:
        calibration: ``None`` (the calibration shipped for the model), ``False`` (no risk), a path,
            a dict or a :class:`~explain.signals.Calibration`; see :func:`calibration_setting`.

    Returns:
        a JSON-ready dict; every engine's workers get it as is (plain data, so processes and Ray
        actors can unpickle it).

    Examples:
        >>> make_settings("tiny", True, None, 0)["method"] is None
        True
    """
    cal, cal_id = calibration_setting(calibration, model)
    return {"model": model, "signals": bool(signals), "method": method, "seed": int(seed), "chat": bool(chat),
            "max_new_tokens": int(max_new_tokens), "top_k": int(top_k), "calibration": cal,
            "calibration_id": cal_id}


def calibration_setting(spec: Any, model: str = "") -> tuple[dict[str, Any] | bool | None, str | None]:
    """The ``calibration=`` of an audit as plain data for its workers, read and checked once, up front.

    Args:
        spec: ``None`` (each worker uses the calibration shipped for the model), ``False`` (no
            risk), a path to a calibration JSON file (``whylm signals calibrate``), a dict or a
            :class:`~explain.signals.Calibration`.
        model: the model's name (for the shipped file).

    Returns:
        (``None``, ``False`` or the calibration as a dict; an id naming its content,
        ``"sha256:<12 hex>"``, that a resumed run must match; ``None`` for ``None``/``False``).

    Raises:
        ExplainError: a missing or unreadable file, or one that is not a calibration (one line).

    Examples:
        >>> calibration_setting(None), calibration_setting(False)
        ((None, None), (False, None))
        >>> calibration_setting("/no/such/cal.json")
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: calibration file '/no/such/cal.json' does not exist
    """
    if spec is None or spec is False:
        return spec, None
    cal, _ = load_calibration(spec, model)
    data = json.loads(cal.to_json(indent=None))
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    return data, f"sha256:{digest}"


def score_names() -> list[str]:
    """The ``score.<name>`` columns of an audit: the scores :func:`explain.signals` gives without
    samples (token scores always; grounding and evidence scores with a context, ``null`` without one).

    Returns:
        a list of score names, in the order signals() reports them.
    """
    return [*score_docs(), *(k for k in EVIDENCE_DOCS if k not in score_docs())]


@lru_cache(maxsize=1)
def versions() -> str:
    """Returns: JSON text of the versions that made a row (whylm, torch, transformers)."""
    from importlib import metadata

    out = {}
    for pkg in ("whylm", "torch", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return json.dumps(out, sort_keys=True)


def audit_record(lm: Any, rec: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Audit one record.

    Returns:
        the output row: inputs, ``risk``/``verdict`` (``None`` when the signals have none),
        ``score.<name>``, ``top_features`` (JSON ``[[feature, value], ...]``), ``model``,
        ``method``, ``seed``, ``versions``, ``seconds``, ``error`` (``None`` or one line), ``report``
        (the SignalReport JSON), ``evidence`` (JSON: each answer sentence with its verdict, risk and
        evidence, :func:`explain.evidence_view.evidence_rows`; ``None`` without a context),
        ``n_unsupported_sentences`` (sentences no context sentence supports; ``None`` without a
        context) and ``attribution`` (the AttributionResult JSON).

    Examples:
        >>> row = audit_record(lm, {"id": "a", "prompt": "2+2="}, settings)   # doctest: +SKIP
    """
    start = time.perf_counter()
    seed, method, chat = int(settings["seed"]), settings.get("method"), bool(settings.get("chat", True))
    row: dict[str, Any] = {
        "id": str(rec["id"]), "prompt": _text(rec.get("prompt")), "response": _text(rec.get("response")),
        "context": _text(rec.get("context")), "generated": None, "model": settings.get("model"),
        "method": method, "seed": seed, "versions": versions(), "error": None,
    }
    try:
        check_record(rec)
        prompt, context, response = rec["prompt"], rec.get("context"), rec.get("response")
        with seeded(seed):
            if settings.get("signals", True):
                rep = signals(lm, prompt, response=response, context=context, seed=seed, progress=False, chat=chat,
                              max_new_tokens=int(settings.get("max_new_tokens", 64)),
                              calibration=settings.get("calibration"))
                response = rep.response  # as scored: signals() strips the whitespace around a given answer
                row.update(response=response, generated=bool(rep.generated), risk=_num(getattr(rep, "risk", None)),
                           verdict=getattr(rep, "verdict", None), report=rep.to_json(indent=None),
                           evidence=evidence_json(rep), n_unsupported_sentences=n_unsupported(rep))
                row.update({f"score.{k}": _num(v) for k, v in rep.scores.items()})
            if method:
                features = {"context": context, "question": prompt} if context is not None else prompt
                res = attribute(lm, features, target=response, method=method, chat=chat, progress=False,
                                max_new_tokens=int(settings.get("max_new_tokens", 64)), **_seed_kw(method, seed))
                if row["generated"] is None:
                    row.update(response=res.target, generated=bool(res.info.get("generated", False)))
                top = res.top_features(int(settings.get("top_k", 5)))
                row.update(top_features=json.dumps([[f, _num(v)] for f, v in top], ensure_ascii=False),
                           attribution=res.to_json())
    except WhylmError as exc:
        row["error"] = one_line(exc)
    except Exception as exc:  # noqa: BLE001 - one bad record must not stop an audit of thousands
        row["error"] = report_internal_error(exc, f"audit of record {row['id']!r}")
    row["seconds"] = time.perf_counter() - start
    return row


def audit_chunk(lm: Any, recs: list[Mapping[str, Any]], settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Returns: :func:`audit_record` of each record, in order."""
    return [audit_record(lm, r, settings) for r in recs]


def _seed_kw(method: str, seed: int) -> dict[str, int]:
    from explain.attribution import METHODS

    info = METHODS.get(method)
    return {"seed": seed} if info is not None and "seed" in inspect.signature(info.fn).parameters else {}


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _text(v: Any) -> str | None:
    return None if v is None else str(v)
