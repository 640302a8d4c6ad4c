"""The dashboard's choice of LLM backend for causal proposals, and where its endpoints come from.

The choices: the embedded model, a local model folder, the backends in :mod:`causal.llm`'s registry
that offer themselves (``openai:`` only while ``$OPENAI_API_KEY`` is set on the server), and the
servers configured when the dashboard was started (``whylm dashboard --llm-endpoint URL
[--api-key-env NAME]``, passed to the app as ``$WHYLM_LLM_ENDPOINTS``: URLs and variable *names*,
never keys). A URL is never typed in the browser, so a server-side key never goes to one.

Examples:
    >>> endpoints_from_options([("--llm-endpoint", "http://127.0.0.1:8000/v1"),
    ...                         ("--api-key-env", "VLLM_KEY"), ("--llm-endpoint", "https://x.example/v1")])
    [{'url': 'http://127.0.0.1:8000/v1', 'api_key_env': 'VLLM_KEY'}, {'url': 'https://x.example/v1', 'api_key_env': None}]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

from causal.llm import OpenAIBackend, backends, get_backend
from causal.llm.keys import check_url, key_env_for
from dashboard.models import EMBEDDED_LABEL, folder_picker, load_model
from explain.errors import WhylmError

ENDPOINTS_ENV = "WHYLM_LLM_ENDPOINTS"
FOLDER_LABEL = "Local model folder"
TIMEOUT, RETRIES = 30.0, 1


@dataclass(frozen=True)
class Choice:
    """One entry of the picker.

    Attributes:
        label: what the radio shows (also saved in History).
        kind: ``"embedded"``, ``"folder"``, ``"registry"`` or ``"endpoint"``.
        prefix: the registry prefix (``kind == "registry"``).
        url, api_key_env: a configured endpoint's URL and the name of its key variable.
        default_model: an example model name (the text field's placeholder).
    """

    label: str
    kind: str
    prefix: str = ""
    url: str = ""
    api_key_env: str | None = None
    default_model: str = ""


def endpoints_from_options(options: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Pair ``--llm-endpoint URL`` options with the ``--api-key-env NAME`` that follows each one,
    checking each pair by the key rule of :mod:`causal.llm.keys`.

    Returns:
        ``[{"url": ..., "api_key_env": NAME or None}, ...]``.

    Examples:
        >>> endpoints_from_options([("--api-key-env", "K")])
        Traceback (most recent call last):
        ...
        explain.errors.WhylmError: --api-key-env K must follow the --llm-endpoint URL it is for
    """
    out: list[dict[str, Any]] = []
    for flag, value in options:
        if flag == "--llm-endpoint":
            try:
                out.append({"url": check_url(value), "api_key_env": None})
            except WhylmError as exc:
                raise WhylmError(f"--llm-endpoint: {exc}") from None
        elif not out or out[-1]["api_key_env"]:
            raise WhylmError(f"--api-key-env {value} must follow the --llm-endpoint URL it is for")
        else:
            out[-1]["api_key_env"] = key_env_for(out[-1]["url"], value)
    return out


def endpoints_env(endpoints: list[dict[str, Any]]) -> str:
    """The value of ``$WHYLM_LLM_ENDPOINTS`` for ``endpoints`` (URLs and variable names only).

    Returns:
        JSON text.

    Examples:
        >>> endpoints_env([{"url": "http://127.0.0.1:8000/v1", "api_key_env": None}])
        '[{"url": "http://127.0.0.1:8000/v1", "api_key_env": null}]'
    """
    return json.dumps([{"url": e["url"], "api_key_env": e.get("api_key_env")} for e in endpoints])


def configured_endpoints() -> list[dict[str, Any]]:
    """The endpoints the dashboard was started with (``$WHYLM_LLM_ENDPOINTS``), checked again.

    Returns:
        a list of ``{"url", "api_key_env"}``; [] when none are configured.

    Examples:
        >>> os.environ[ENDPOINTS_ENV] = '[{"url": "http://127.0.0.1:9/v1", "api_key_env": null}]'
        >>> configured_endpoints()
        [{'url': 'http://127.0.0.1:9/v1', 'api_key_env': None}]
        >>> del os.environ[ENDPOINTS_ENV]
    """
    raw = os.environ.get(ENDPOINTS_ENV, "").strip()
    if not raw:
        return []
    try:
        items = json.loads(raw)
        return [{"url": check_url(i["url"]), "api_key_env": key_env_for(check_url(i["url"]), i.get("api_key_env"))}
                for i in items]
    except (ValueError, TypeError, KeyError) as exc:
        raise WhylmError(f"${ENDPOINTS_ENV} is not a valid endpoint list ({exc}); restart the "
                         "dashboard with --llm-endpoint URL [--api-key-env NAME]") from None


def choices() -> list[Choice]:
    """What the picker offers now, in order.

    Returns:
        the embedded model, a local folder, the registry's offered backends, the configured servers.

    Examples:
        >>> [c.label for c in choices()][:2]
        ['Embedded SmolLM2-135M-Instruct', 'Local model folder']
    """
    out = [Choice(EMBEDDED_LABEL, "embedded"), Choice(FOLDER_LABEL, "folder")]
    for entry in backends():
        if entry.offer is not None and entry.offer():
            model = entry.example.partition(":")[2]
            out.append(Choice(f"{entry.label} ({entry.prefix}:)", "registry", prefix=entry.prefix,
                              default_model=model))
    for ep in configured_endpoints():
        note = f" (key from ${ep['api_key_env']})" if ep["api_key_env"] else ""
        out.append(Choice(f"Server {ep['url']}{note}", "endpoint", url=ep["url"],
                          api_key_env=ep["api_key_env"]))
    return out


def make_llm(inputs: dict[str, Any]) -> tuple[Any, str]:
    """The backend for a picker's saved inputs, and a label for History (no key in either).

    Args:
        inputs: ``{"backend_choice": label, "folder": ..., "llm_model": ...}`` as :func:`pick_llm`
            returns them (or as History saved them). Local models load through
            :func:`dashboard.models.load_model` (cached per server process).

    Returns:
        (an LLM backend or LanguageModel for ``propose_graph``, a label).

    Examples:
        >>> make_llm({"backend_choice": "Server http://evil.example/v1"})
        Traceback (most recent call last):
        ...
        explain.errors.WhylmError: LLM 'Server http://evil.example/v1' is not offered here; servers are configured when the dashboard starts (--llm-endpoint URL [--api-key-env NAME])
    """
    label = str(inputs.get("backend_choice") or EMBEDDED_LABEL)
    choice = next((c for c in choices() if c.label == label), None)
    if choice is None:
        raise WhylmError(f"LLM {label!r} is not offered here; servers are configured when the "
                         "dashboard starts (--llm-endpoint URL [--api-key-env NAME])")
    model = str(inputs.get("llm_model") or "").strip()
    if choice.kind == "embedded":
        return load_model(None), "embedded SmolLM2-135M-Instruct"
    if choice.kind == "folder":
        folder = str(inputs.get("folder") or "").strip()
        if not folder:
            raise WhylmError("enter a model folder, or pick the embedded model")
        return load_model(folder), folder
    if not model:
        raise WhylmError(f"enter the model name for {choice.label}")
    if choice.kind == "registry":
        spec = f"{choice.prefix}:{model}"
        return get_backend(spec, timeout=TIMEOUT, max_retries=RETRIES), spec
    llm = OpenAIBackend(choice.url, model, timeout=TIMEOUT, max_retries=RETRIES,
                        api_key_env=choice.api_key_env)
    return llm, f"{choice.url} {model}"


def pick_llm(radio_area: Any, field_area: Any, prefix: str = "cz") -> dict[str, Any]:
    """Draw the picker: a radio of :func:`choices` in ``radio_area``, its fields in ``field_area``.

    Returns:
        the inputs to save and to pass to :func:`make_llm`: ``backend_choice``, ``folder``,
        ``llm_model`` (never a URL typed by the user, never a key).
    """
    import streamlit as st

    options = choices()
    labels = [c.label for c in options]
    if st.session_state.get(f"{prefix}_backend") not in labels:
        st.session_state[f"{prefix}_backend"] = labels[0]
    label = radio_area.radio("LLM", labels, key=f"{prefix}_backend")
    choice = options[labels.index(label)]
    folder = model = ""
    if choice.kind == "folder":
        with field_area:
            folder = folder_picker(f"{prefix}_folder")
    elif choice.kind in ("registry", "endpoint"):
        model = field_area.text_input("Model name", key=f"{prefix}_llm_model",
                                      placeholder=f"e.g. {choice.default_model or 'qwen2.5-7b-instruct'}")
        if choice.api_key_env:
            have = "is set" if os.environ.get(choice.api_key_env) else "is NOT set"
            field_area.caption(f"The key is read from ${choice.api_key_env} on the server ({have}); "
                               "it is never typed here and never stored.")
    field_area.caption("Other servers: start the dashboard with `--llm-endpoint URL` "
                       "(and `--api-key-env NAME` if it needs a key).")
    return {"backend_choice": label, "folder": folder, "llm_model": model}


def input_keys(prefix: str = "cz") -> tuple[str, ...]:
    """The session keys of the picker's widgets (for a page's ``INPUT_KEYS``).

    Returns:
        the keys.

    Examples:
        >>> input_keys("cz")
        ('cz_backend', 'cz_folder', 'cz_llm_model')
    """
    return (f"{prefix}_backend", f"{prefix}_folder", f"{prefix}_llm_model")


def restore(inputs: dict[str, Any], prefix: str = "cz") -> None:
    """Preset the picker's widgets from a run reopened from History (only choices offered now).

    Returns:
        None.
    """
    import streamlit as st

    options = {c.label: c for c in choices()}
    choice = options.get(str(inputs.get("backend_choice")))
    if choice is None:
        return
    st.session_state[f"{prefix}_backend"] = choice.label
    if inputs.get("folder"):
        st.session_state[f"{prefix}_folder"] = str(inputs["folder"])
    if inputs.get("llm_model"):
        st.session_state[f"{prefix}_llm_model"] = str(inputs["llm_model"])
