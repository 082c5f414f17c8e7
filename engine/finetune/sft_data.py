"""Generator SFT data: (prompt, note) pairs from the engine's files, tokenized and packed.

Pairs join ``kgsynth generate`` notes (ok records, last line per ``record_id``) with their
prompts by record id: from a ``kgsynth plan`` file (spec lines, rendered by the recipe's
template, or ``--format openai-batch`` lines, whose messages are used as written), else from
the spec each note record carries. Bad input is one ``EngineError`` naming file, line, field.

Tokenization matches what the transformers backend sends at generation time: with a chat
template, the prompt is the template with the generation prompt and the target is the rest
of the template rendered with the note as the assistant turn (so the end-of-turn tokens are
learned); without one, the prompt is the ``role: content`` transcript ending ``assistant:``
(with the tokenizer's special tokens) and the target is `` NOTE`` plus the EOS token.
Labels are -100 on prompt tokens: the loss is on the note only.

Packing concatenates whole examples into sequences of at most ``max_length`` tokens (best
fit, longest first). Position ids restart at 0 for every example and no attention mask is
passed, which transformers reads as packed sequences (a block-diagonal causal mask in
sdpa/eager, variable-length kernels in flash-attention): no token attends across examples,
and as every example starts with a prompt token labelled -100, no example's first token is
predicted from its neighbour.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from engine.annotate.notes import note_text
from engine.errors import EngineError, validation_detail
from engine.recipes import render_messages
from engine.runner.records import NoteRecord
from engine.spec import GenerationSpec

IGNORE = -100
Messages = list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class Pair:
    """One training example: the prompt's chat messages and the note to learn."""

    record_id: str
    messages: Messages
    note: str


@dataclass(slots=True)
class PairSet:
    """The pairs read and what the reader saw: skipped records and input digests."""

    pairs: list[Pair]
    not_ok: int = 0
    files: dict[str, str] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        """Digests of the input files and of the pairs themselves (order-independent)."""
        digest = hashlib.sha256()
        for pair in sorted(self.pairs, key=lambda p: p.record_id):
            digest.update(orjson.dumps([pair.record_id, pair.messages, pair.note]))
        return {
            "files": self.files,
            "pairs": len(self.pairs),
            "pairs_sha256": digest.hexdigest(),
            "not_ok_skipped": self.not_ok,
        }


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise EngineError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise EngineError(f"{path} is a directory; name a {what} JSONL file") from None
    except OSError as err:
        raise EngineError(f"{path}: {err.strerror or err}") from None


def _lines(path: Path, raw: bytes) -> Iterator[tuple[int, dict[str, Any], bytes]]:
    """``(line number, object, bytes)``; a cut-off last line (no newline, no JSON) is dropped."""
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            if number == len(lines):
                return  # a partial last line left by an interrupted writer
            raise EngineError(f"{path}, line {number}: not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise EngineError(f"{path}, line {number}: not a JSON object")
        yield number, data, line


def _batch_messages(path: Path, number: int, data: dict[str, Any]) -> Messages:
    body = data.get("body")
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    ):
        raise EngineError(
            f"{path}, line {number}: field body.messages: a list of {{role, content}} strings "
            "expected in an OpenAI batch line"
        )
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def read_prompts(path: Path) -> tuple[dict[str, Messages], str]:
    """Record id -> chat messages from a ``kgsynth plan`` file, and the file's sha256."""
    raw = _read(path, "specs")
    prompts: dict[str, Messages] = {}
    for number, data, line in _lines(path, raw):
        if isinstance(data.get("custom_id"), str):
            prompts[data["custom_id"]] = _batch_messages(path, number, data)
            continue
        if not isinstance(data.get("record_id"), str):
            raise EngineError(
                f"{path}, line {number}: field record_id (or custom_id) missing: not a "
                "`kgsynth plan` spec or openai-batch line"
            )
        try:
            spec = GenerationSpec.model_validate_json(line)
        except ValidationError as err:
            raise EngineError(
                f"{path}, line {number}: not a generation spec: {validation_detail(err)}"
            ) from None
        try:
            prompts[spec.record_id] = [dict(m) for m in render_messages(spec)]
        except EngineError as err:
            raise EngineError(f"{path}, line {number}: {err}") from None
    if not prompts:
        raise EngineError(f"{path} holds no specs")
    return prompts, hashlib.sha256(raw).hexdigest()


def read_pairs(notes: Path, specs: Path | None = None) -> PairSet:
    """The ok notes of ``notes`` joined by record id with their prompts (see the module doc)."""
    raw = _read(notes, "notes")
    latest: dict[str, tuple[int, NoteRecord]] = {}
    for number, _, line in _lines(notes, raw):
        try:
            record = NoteRecord.model_validate_json(line)
        except ValidationError as err:
            raise EngineError(
                f"{notes}, line {number}: not a kgsynth note record ({validation_detail(err)}); "
                "generator SFT reads the JSONL that `kgsynth generate` writes"
            ) from None
        latest[record.record_id] = (number, record)
    if not latest:
        raise EngineError(f"{notes} holds no notes")
    files = {str(notes): hashlib.sha256(raw).hexdigest()}
    prompts: dict[str, Messages] = {}
    if specs is not None:
        prompts, files[str(specs)] = read_prompts(specs)
    pairs: list[Pair] = []
    for number, record in latest.values():
        if record.status != "ok":
            continue
        if specs is not None:
            if record.record_id not in prompts:
                raise EngineError(
                    f"{notes}, line {number}: record_id {record.record_id} has no spec in {specs}"
                )
            messages = prompts[record.record_id]
        elif record.spec is None:
            raise EngineError(
                f"{notes}, line {number}: field spec: the record carries no spec; pass the "
                "`kgsynth plan` file it was generated from (--specs)"
            )
        else:
            try:
                messages = [dict(m) for m in render_messages(record.spec)]
            except EngineError as err:
                raise EngineError(f"{notes}, line {number}: {err}") from None
        text = note_text(record.text, record.parsed)
        if not text.strip():
            raise EngineError(f"{notes}, line {number}: field text: an ok record with no text")
        pairs.append(Pair(record.record_id, messages, text))
    if not pairs:
        raise EngineError(f"{notes} holds no ok notes ({len(latest)} records, none ok)")
    return PairSet(pairs, len(latest) - len(pairs), files)


def transcript(messages: Messages) -> str:
    """The plain prompt of a tokenizer without a chat template (as the transformers backend)."""
    return "\n\n".join([*(f"{m['role']}: {m['content']}" for m in messages), "assistant:"])


@dataclass(frozen=True, slots=True)
class Example:
    """Token ids and labels of one pair (labels -100 on the prompt); ``truncated`` when the
    note was cut to fit."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


def tokenize_pair(tokenizer: Any, pair: Pair, max_length: int) -> Example | None:
    """``pair`` as token ids with the loss on the note only; ``None`` when the prompt alone
    leaves no room for a note token within ``max_length``. Longer notes are cut at the end."""
    if tokenizer.chat_template:
        prompt: str = tokenizer.apply_chat_template(
            pair.messages, tokenize=False, add_generation_prompt=True
        )
        full: str = tokenizer.apply_chat_template(
            [*pair.messages, {"role": "assistant", "content": pair.note}], tokenize=False
        )
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if full.startswith(prompt):
            target = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
        else:  # a template that rewrites earlier turns: the note and EOS
            target = [*tokenizer(pair.note, add_special_tokens=False)["input_ids"]]
            target.append(tokenizer.eos_token_id)
    else:
        prompt_ids = tokenizer(transcript(pair.messages))["input_ids"]
        target = [*tokenizer(" " + pair.note, add_special_tokens=False)["input_ids"]]
        target.append(tokenizer.eos_token_id)
    room = max_length - len(prompt_ids)
    if room < 1 or not target:
        return None
    cut = len(target) > room
    target = target[:room]
    return Example([*prompt_ids, *target], [IGNORE] * len(prompt_ids) + list(target), cut)


def pack(lengths: list[int], max_length: int) -> list[list[int]]:
    """Example indices grouped into sequences of at most ``max_length`` tokens.

    Best fit decreasing: longest example first, each into the open sequence with the least
    room that still fits it, else a new sequence. Indices within a sequence keep input order.
    """
    if any(n > max_length for n in lengths):
        raise ValueError("an example is longer than max_length")
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        n = lengths[i]
        at = bisect.bisect_left(free, (n, -1))
        if at < len(free):
            room, b = free.pop(at)
        else:
            room, b = max_length, len(bins)
            bins.append([])
        bins[b].append(i)
        if room - n > 0:
            bisect.insort(free, (room - n, b))
    return [sorted(b) for b in bins]


@dataclass(frozen=True, slots=True)
class Sequence:
    """One training row: ids, labels and per-example position ids (restarting at 0)."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    examples: int


def build_sequences(examples: list[Example], max_length: int, packing: bool) -> list[Sequence]:
    """Packed sequences (see ``pack``), or one sequence per example without packing."""
    groups = (
        pack([len(e.input_ids) for e in examples], max_length)
        if packing
        else [[i] for i in range(len(examples))]
    )
    out = []
    for group in groups:
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for i in group:
            ex = examples[i]
            ids += ex.input_ids
            labels += [IGNORE, *ex.labels[1:]]  # never predict across an example boundary
            positions += range(len(ex.input_ids))
        out.append(Sequence(ids, labels, positions, len(group)))
    return out
