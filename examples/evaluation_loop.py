"""Attribution inside an evaluation loop: explain every prompt/response pair of a JSONL file.

Each input line is ``{"id": ..., "prompt": ..., "response": ...}``; each output line is the input's
id plus the :class:`explain.AttributionResult` as a dict. The loop is resumable: ids already in the
output file are skipped, and each result is flushed as soon as it is computed, so an interrupted
run loses at most the item it was working on.

Run:
    python examples/evaluation_loop.py examples/data/eval_pairs.jsonl results.jsonl
    python examples/evaluation_loop.py pairs.jsonl out.jsonl --method shapley --model ./my-model
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from explain import ExplainError, LanguageModel, attribute


def done_ids(path: Path) -> set[str]:
    """Ids already written to ``path`` (a partial last line from a crash is ignored)."""
    ids: set[str] = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                ids.add(str(json.loads(line)["id"]))
            except (json.JSONDecodeError, KeyError):
                continue
    return ids


def drop_partial_line(path: Path) -> None:
    """Cut a half-written last line (left by a crash) so appended rows start on a new line."""
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):
            path.write_text(text[: text.rfind("\n") + 1], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", type=Path, help="JSONL with id, prompt, response")
    parser.add_argument("out", type=Path, help="JSONL to append results to")
    parser.add_argument("--method", default="ablation")
    parser.add_argument("--model", default=None, help="model folder (default: embedded SmolLM2)")
    parser.add_argument("--chat", action="store_true")
    args = parser.parse_args(argv)

    items = [json.loads(line) for line in args.pairs.read_text(encoding="utf-8").splitlines() if line.strip()]
    drop_partial_line(args.out)
    seen = done_ids(args.out)
    todo = [it for it in items if str(it["id"]) not in seen]
    print(f"{len(items)} items, {len(seen)} already done, {len(todo)} to go", file=sys.stderr)
    lm = LanguageModel.load(args.model)
    with args.out.open("a", encoding="utf-8") as out:
        for item in tqdm(todo, desc="attributing"):
            try:
                res = attribute(lm, item["prompt"], target=item["response"], method=args.method,
                                chat=args.chat, progress=False)
                row = {"id": item["id"], **res.to_dict()}
            except ExplainError as exc:  # a bad item is recorded, not fatal
                row = {"id": item["id"], "error": str(exc)}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
