"""DualAlign's second LLM pass: sentences labelled by the scheme's protocol, through the runner.

A note's sentences are cut into chunks (``CHUNK_SENTENCES`` a request); each chunk is one
runner job, ``<note id>/<text digest>/s<first>-<last>``, whose prompt (``annotate.j2`` beside
this module) holds the scheme's categories and annotation guidelines (a static system
message, the same for every chunk of a scheme, so servers reuse its prefix) and the chunk's
numbered sentences. The answer is
``SentenceLabels`` JSON; ``CheckedBackend`` refuses one that leaves a sentence out, adds one
or labels outside the scheme (an ``unparseable`` answer: the runner retries it, then records
the chunk ``failed`` with the reason). ``assemble`` turns a note's chunk records into one
``AnnotatedNote``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined, Template, TemplateError

from engine.annotate.model import NO_SYMPTOM, Label, Sentence, SentenceAnnotation
from engine.annotate.notes import Note
from engine.annotate.scheme import LabelScheme
from engine.errors import EngineError
from engine.llm.base import Backend, LLMRequest, LLMResponse, Messages
from engine.llm.parsing import UnparseableOutput, parse_structured
from engine.outputs import SentenceLabels, sentence_labels_for
from engine.runner.records import GenerationJob, NoteRecord

#: sentences per request: enough to amortise the protocol, few enough to answer reliably
CHUNK_SENTENCES = 12
#: the prompt, beside this module (``engine/prompts`` holds only the recipes' templates)
TEMPLATE = Path(__file__).with_name("annotate.j2")


class AnnotationPrompt:
    """``annotate.j2`` compiled once; the system message rendered once per scheme."""

    def __init__(self, source: str) -> None:
        self.hash = hashlib.sha256(source.encode("utf-8")).hexdigest()
        env = Environment(
            undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
        )
        try:
            self.template: Template = env.from_string(source)
        except TemplateError as err:
            raise EngineError(f"template {TEMPLATE.name}: {err}") from None
        self._systems: dict[LabelScheme, str] = {}

    def _block(self, block: str, context: dict[str, Any]) -> str:
        try:
            ctx = self.template.new_context(context, shared=True)
            return "".join(self.template.blocks[block](ctx)).strip()
        except (TemplateError, KeyError) as err:
            raise EngineError(f"template {TEMPLATE.name}, block {block}: {err}") from None

    def messages(self, scheme: LabelScheme, sentences: Sequence[Sentence]) -> Messages:
        """The static protocol first, then the chunk's numbered sentences."""
        system = self._systems.get(scheme)
        if system is None:
            system = self._systems[scheme] = self._block(
                "system",
                {
                    "disease": scheme.disease,
                    "scheme": scheme.scheme,
                    "categories": scheme.categories,
                    "no_symptom": NO_SYMPTOM,
                },
            )
        rows = [(s.index, s.section, " ".join(s.text.split())) for s in sentences]
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": self._block("user", {"sentences": rows})},
        ]


@cache
def annotation_prompt() -> AnnotationPrompt:
    return AnnotationPrompt(TEMPLATE.read_text(encoding="utf-8"))


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive sentences of one note, labelled by one request."""

    note: Note
    scheme: LabelScheme
    sentences: tuple[Sentence, ...]

    @property
    def record_id(self) -> str:
        first, last = self.sentences[0].index, self.sentences[-1].index
        return f"{self.note.record_id}/{self.note.digest[:8]}/s{first}-{last}"


def chunked(
    note: Note, scheme: LabelScheme, sentences: Sequence[Sentence], size: int = CHUNK_SENTENCES
) -> list[Chunk]:
    """``sentences`` in chunks of at most ``size`` (none for a note without sentences)."""
    return [
        Chunk(note, scheme, tuple(sentences[i : i + size])) for i in range(0, len(sentences), size)
    ]


def check_chunk(chunk: Chunk, answer: SentenceLabels) -> list[str]:
    """The label name of each of the chunk's sentences, in order.

    Raises ``UnparseableOutput`` naming the problem: a sentence left out, one not in the
    chunk or labelled twice, or a label outside the note's scheme.
    """
    wanted = [s.index for s in chunk.sentences]
    given: dict[int, str] = {}
    for item in answer.labels:
        if item.sentence not in given and item.sentence in wanted:
            given[item.sentence] = item.label
        elif item.sentence in given:
            raise UnparseableOutput(f"sentence {item.sentence} labelled twice")
        else:
            raise UnparseableOutput(
                f"label for sentence {item.sentence}, which is not in this request "
                f"({wanted[0]}-{wanted[-1]})"
            )
    missing = [i for i in wanted if i not in given]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise UnparseableOutput(f"no label for sentence(s) {shown} of {len(wanted)}")
    allowed = set(chunk.scheme.labels)
    for index in wanted:
        if given[index] not in allowed:
            raise UnparseableOutput(
                f"sentence {index}: label {given[index]!r} is not in scheme "
                f"{chunk.scheme.scheme} ({', '.join(chunk.scheme.labels)})"
            )
    return [given[i] for i in wanted]


def chunk_labels(chunk: Chunk, parsed: Any) -> tuple[Label, ...]:
    """The ``Label`` of each of the chunk's sentences from a stored ``SentenceLabels`` answer
    (validated again: it may come from an older kgsynth); ``check_chunk``'s errors."""
    names = check_chunk(chunk, SentenceLabels.model_validate(parsed))
    return tuple(chunk.scheme.label(name) for name in names)


#: finish reasons the runner's ``check_response`` turns into their own failure kinds
_CUT = ("length", "content_filter")


class CheckedBackend(Backend):
    """``inner`` whose answers must label exactly the sentences of their chunk.

    The runner's ``check_response`` validates the JSON schema; this adds what one schema
    for the whole run cannot say (which sentence numbers, which scheme), so a partial
    answer is retried like any unparseable one. It speaks to no model itself.
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.cacheable = inner.cacheable
        self.local = inner.local
        self.chunks: dict[str, Chunk] = {}

    def expect(self, chunk: Chunk) -> None:
        self.chunks[chunk.record_id] = chunk

    async def complete(self, request: LLMRequest) -> LLMResponse:
        response = await self.inner.complete(request)
        chunk = self.chunks.get(request.request_id)
        if chunk is None or request.output is None or response.finish_reason in _CUT:
            return response  # a cut answer: the runner's check_response names why
        parsed = parse_structured(response.raw, request.output)
        if not isinstance(parsed, SentenceLabels):
            raise EngineError(f"annotation requests must ask for SentenceLabels, not {parsed!r}")
        check_chunk(chunk, parsed)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


def output_model(schemes: Iterable[LabelScheme]) -> type[SentenceLabels]:
    """The run's structured output: every label of every scheme in the run as an enum."""
    labels = sorted({label for s in schemes for label in s.labels})
    return sentence_labels_for(tuple(labels))


def chunk_job(chunk: Chunk, index: int) -> GenerationJob:
    """The runner job of ``chunk``; its seed is derived from its record id."""
    record_id = chunk.record_id
    seed = int.from_bytes(hashlib.sha256(record_id.encode("utf-8")).digest()[:4], "big")
    return GenerationJob(
        record_id=record_id,
        record_index=index,
        messages=annotation_prompt().messages(chunk.scheme, chunk.sentences),
        seed=seed,
    )


@dataclass(frozen=True, slots=True)
class Assembled:
    """A note's labelled sentences, or why it failed; ``None`` labels: a chunk not yet run."""

    sentences: tuple[SentenceAnnotation, ...]
    reason: str | None


def assemble(chunks: Sequence[Chunk], records: dict[str, NoteRecord]) -> Assembled | None:
    """One note's chunk records as labelled sentences; ``None`` while a chunk is missing."""
    out: list[SentenceAnnotation] = []
    reasons = []
    for chunk in chunks:
        record = records.get(chunk.record_id)
        if record is None:
            return None
        span = f"sentences {chunk.sentences[0].index}-{chunk.sentences[-1].index}"
        if record.status != "ok":
            reasons.append(f"{span}: {record.reason or record.failure or 'failed'}")
            continue
        try:
            labels = chunk_labels(chunk, record.parsed)
        except (UnparseableOutput, ValueError) as err:  # an answer from an older kgsynth
            reasons.append(f"{span}: {err}")
            continue
        out.extend(
            SentenceAnnotation(sentence=s, label=lab)
            for s, lab in zip(chunk.sentences, labels, strict=True)
        )
    return Assembled(tuple(out), "; ".join(reasons) or None)
