"""``kgsynth annotate`` end to end: notes in, one ``AnnotatedNote`` line per note out.

Three annotators: ``llm`` (chunks through the runner into ``STEM.chunks.jsonl`` beside the
output, with the runner's cache, retries and resume, then assembled per note), ``rules``
(the lexicon annotator standing in for the template backend, which has no model) and
``lexicon`` (asked for by ``--lexicon``). Every note's labels go through the constraint
check. The output is append-only: a rerun skips notes already ``ok`` with the same
fingerprint and text, and writes the others again (readers take the last line per note).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.annotate.check import check_note
from engine.annotate.llm import (
    CHUNK_SENTENCES,
    Assembled,
    CheckedBackend,
    Chunk,
    annotation_prompt,
    assemble,
    chunk_job,
    chunked,
    output_model,
)
from engine.annotate.model import AnnotatedNote, Annotator, Sentence, SentenceAnnotation
from engine.annotate.notes import Note, NotesFile
from engine.annotate.output import AnnotateSummary, AnnotationLog, chunks_path
from engine.annotate.scheme import LabelScheme, scheme_of
from engine.annotate.segment import segment_many
from engine.errors import EngineError
from engine.llm.base import Backend, SamplingParams
from engine.llm.pricing import PriceTable
from engine.profile import DiseaseProfile, Target, load_profile
from engine.provenance import fingerprint, sha256_hex
from engine.runner.cache import RequestCache
from engine.runner.output import read_records
from engine.runner.records import GenerationJob
from engine.runner.run import RunConfig, Runner
from kg.store import GraphStore

#: an annotation fingerprint's version: bump when the same inputs would label differently
ANNOTATION_VERSION = 1


class Labeller(Protocol):
    """A model-free sentence labeller (``engine.annotate.lexicon.LexiconAnnotator``)."""

    def annotate_many(
        self, notes: Iterable[tuple[str, Sequence[Sentence]]], batch_size: int = ...
    ) -> list[tuple[SentenceAnnotation, ...]]: ...


#: builds the labeller of a scheme from its disease profile (called once per scheme)
LabellerFactory = Callable[[DiseaseProfile, LabelScheme], Labeller]


class Labellers:
    """One labeller per scheme, built on first use; labels many notes per call."""

    def __init__(self, factory: LabellerFactory) -> None:
        self.factory = factory
        self._built: dict[LabelScheme, Labeller] = {}

    def label(
        self, notes: Sequence[tuple[Prepared, Sequence[Sentence]]]
    ) -> list[tuple[SentenceAnnotation, ...]]:
        """Each note's sentences labelled by its scheme's labeller (one call per scheme)."""
        out: list[tuple[SentenceAnnotation, ...]] = [()] * len(notes)
        groups: dict[LabelScheme, list[int]] = {}
        for n, (item, _) in enumerate(notes):
            if item.scheme is not None:
                groups.setdefault(item.scheme, []).append(n)
        for scheme, members in groups.items():
            labeller = self._built.get(scheme)
            if labeller is None:
                profile = notes[members[0]][0].profile
                assert profile is not None  # a note with a scheme has its profile
                labeller = self._built[scheme] = self.factory(profile, scheme)
            found = labeller.annotate_many((notes[n][0].note.text, notes[n][1]) for n in members)
            for n, labelled in zip(members, found, strict=True):
                out[n] = labelled
        return out


@dataclass(frozen=True, slots=True)
class Prepared:
    """A note with its disease profile and label scheme, or the reason it cannot be labelled."""

    note: Note
    profile: DiseaseProfile | None = None
    scheme: LabelScheme | None = None
    problem: str | None = None


def prepare(notes: NotesFile, store: GraphStore, scheme: str | None) -> list[Prepared]:
    """Each note with its profile (read once per disease) and scheme (``scheme`` or the
    spec's own, else the disease's most observed)."""
    profiles: dict[str, DiseaseProfile] = {}
    schemes: dict[tuple[str, str | None], LabelScheme | str] = {}
    out = []
    for note in notes.notes:
        spec = note.spec
        if spec is None:
            out.append(Prepared(note, problem="the note has no spec: its disease is unknown"))
            continue
        profile = profiles.get(spec.disease_id)
        if profile is None:
            target = Target(disease_id=spec.disease_id, disease=spec.disease)
            profile = profiles[spec.disease_id] = load_profile(store, target)
        key = (spec.disease_id, scheme or spec.scheme)
        if key not in schemes:
            try:
                schemes[key] = scheme_of(profile, key[1])
            except EngineError as err:
                schemes[key] = str(err)
        found = schemes[key]
        if isinstance(found, str):
            out.append(Prepared(note, profile, problem=found))
        else:
            out.append(Prepared(note, profile, found))
    return out


@dataclass(frozen=True, slots=True)
class Labelling:
    """Who labels and how: what the annotation fingerprint is made of."""

    annotator: Annotator
    backend: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    template_hash: str | None = None
    chunk_sentences: int | None = None
    _fingerprints: dict[LabelScheme | None, str] = field(default_factory=dict, compare=False)

    def fingerprint(self, scheme: LabelScheme | None) -> str:
        """sha256 of who labels, how, and the scheme's categories and protocols."""
        known = self._fingerprints.get(scheme)
        if known is None:
            known = self._fingerprints[scheme] = self._hash(scheme)
        return known

    def _hash(self, scheme: LabelScheme | None) -> str:
        return sha256_hex(
            {
                "v": ANNOTATION_VERSION,
                "annotator": self.annotator,
                "backend": self.backend,
                "model": self.model,
                "params": self.params,
                "template_hash": self.template_hash,
                "chunk_sentences": self.chunk_sentences,
                "scheme": scheme.model_dump(mode="json") if scheme else None,
            }
        )


def _finish(
    how: Labelling,
    item: Prepared,
    sentences: Sequence[SentenceAnnotation],
    reason: str | None,
    summary: AnnotateSummary,
) -> AnnotatedNote:
    """The output line of one note, its constraint check counted in ``summary``."""
    scheme = item.scheme
    note = AnnotatedNote(
        record_id=item.note.record_id,
        status="failed" if reason else "ok",
        reason=reason,
        annotator=how.annotator,
        backend=how.backend,
        model=how.model,
        scheme=scheme.scheme if scheme else None,
        note_fingerprint=item.note.digest,
        fingerprint=how.fingerprint(scheme),
        sentences=tuple(sentences),
    )
    if reason:
        summary.failed += 1
        summary.failure_reasons[reason] = summary.failure_reasons.get(reason, 0) + 1
        return note
    summary.ok += 1
    summary.sentences += len(sentences)
    if scheme is None or item.note.spec is None:
        return note
    result = check_note(item.note.spec.keywords, sentences, scheme, item.profile)
    summary.check.add(result)
    return note.model_copy(
        update={
            "realisations": result.realisations,
            "review": bool(result.reasons),
            "review_reasons": result.reasons,
        }
    )


def _todo(
    items: Sequence[Prepared], how: Labelling, log: AnnotationLog, summary: AnnotateSummary
) -> list[Prepared]:
    todo = []
    for item in items:
        if log.done(item.note, how.fingerprint(item.scheme)):
            summary.skipped += 1
        else:
            todo.append(item)
    return todo


def annotate_lexicon(
    items: Sequence[Prepared],
    log: AnnotationLog,
    how: Labelling,
    labeller_for: LabellerFactory,
    *,
    batch: int = 256,
) -> AnnotateSummary:
    """Label with a model-free labeller (``rules`` or ``lexicon``), ``batch`` notes at a time,
    appending each batch's lines as it is done."""
    started = time.monotonic()
    summary = AnnotateSummary(how.annotator, how.backend, how.model, str(log.path), len(items))
    labellers = Labellers(labeller_for)
    todo = _todo(items, how, log, summary)
    try:
        for first in range(0, len(todo), batch):
            part = todo[first : first + batch]
            fit = [i for i in part if i.scheme and not i.problem]
            ready = list(zip(fit, segment_many(i.note.text for i in fit), strict=True))
            found = iter(labellers.label(ready))
            lines = [
                _finish(how, i, next(found), None, summary)
                if i.scheme and not i.problem
                else _finish(how, i, (), i.problem or "no scheme", summary)
                for i in part
            ]
            log.write(lines)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.elapsed_s = round(time.monotonic() - started, 3)
    return summary


class _ChunkRunner(Runner):
    """The runner with one fingerprint per label scheme (not per generation spec)."""

    def __init__(self, *args: Any, fingerprints: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fingerprints = fingerprints

    def job_fingerprint(self, job: GenerationJob) -> str:
        return self._fingerprints[job.record_id]


@dataclass(slots=True)
class LlmRun:
    """The runner side of an LLM annotation: backend, sampling, run config, cache, prices."""

    backend: Backend
    params: SamplingParams
    config: RunConfig
    cache: RequestCache | None = None
    prices: PriceTable | None = None
    chunk_sentences: int = CHUNK_SENTENCES
    provenance: dict[str, Any] = field(default_factory=dict)


def llm_labelling(run: LlmRun) -> Labelling:
    return Labelling(
        annotator="llm",
        backend=run.backend.name,
        model=run.backend.model,
        params=run.params.model_dump(mode="json"),
        template_hash=annotation_prompt().hash,
        chunk_sentences=run.chunk_sentences,
    )


def chunk_plan(items: Sequence[Prepared], size: int) -> list[tuple[Prepared, list[Chunk]]]:
    """Each labellable note with its chunks (its text segmented once)."""
    ready = [item for item in items if item.scheme is not None and item.problem is None]
    sentences = segment_many(item.note.text for item in ready)
    return [
        (item, chunked(item.note, item.scheme, found, size))
        for item, found in zip(ready, sentences, strict=True)
        if item.scheme is not None
    ]


async def annotate_llm(
    items: Sequence[Prepared],
    log: AnnotationLog,
    run: LlmRun,
    *,
    cross_check: LabellerFactory | None = None,
) -> AnnotateSummary:
    """Label through the runner (chunk records beside the output), then assemble per note.

    ``cross_check(profile, scheme)``, when given, builds a lexicon labeller whose mentions
    are attached to the LLM's labelled sentences (and help the constraint check).
    """
    started = time.monotonic()
    how = llm_labelling(run)
    summary = AnnotateSummary("llm", how.backend, how.model, str(log.path), len(items))
    todo = _todo(items, how, log, summary)
    plan = chunk_plan(todo, run.chunk_sentences)
    unlabellable = [i for i in todo if i.scheme is None or i.problem is not None]
    checked = CheckedBackend(run.backend)
    fingerprints: dict[str, str] = {}
    scheme_fp: dict[LabelScheme, str] = {}
    for _, chunks in plan:
        for chunk in chunks:
            checked.expect(chunk)
            fp = scheme_fp.get(chunk.scheme)
            if fp is None:
                fp = scheme_fp[chunk.scheme] = fingerprint(
                    kg_hash=sha256_hex(chunk.scheme.model_dump(mode="json")),
                    recipe="annotate",
                    template_hash=how.template_hash,
                    backend=how.backend,
                    model=how.model,
                    params=how.params,
                )
            fingerprints[chunk.record_id] = fp
    target = chunks_path(log.path)
    total = sum(len(chunks) for _, chunks in plan)
    try:
        if total:
            runner = _ChunkRunner(
                checked,
                target,
                params=run.params,
                config=run.config,
                cache=run.cache,
                prices=run.prices,
                # every scheme of the input, not only of the notes still to do: the output
                # model is part of the run identity, which must not change on resume
                response_model=output_model(i.scheme for i in items if i.scheme is not None),
                source={
                    "annotate": ANNOTATION_VERSION,
                    "template_sha256": how.template_hash,
                    "chunk_sentences": run.chunk_sentences,
                },
                provenance=run.provenance,
                console=None,
                fingerprints=fingerprints,
            )
            jobs = (chunk_job(chunk, n) for n, chunk in enumerate(_all_chunks(plan)))
            summary.run = await runner.run(jobs, total=total)
    finally:
        records = read_records(target) if target.exists() else {}
        written = [_finish(how, i, (), i.problem or "no scheme", summary) for i in unlabellable]
        done: list[tuple[Prepared, Assembled]] = []
        for item, chunks in plan:
            assembled = assemble(chunks, records)
            if assembled is None:
                summary.pending += 1
            else:
                done.append((item, assembled))
        checked_ok = [(i, a) for i, a in done if not a.reason]
        if cross_check is not None and checked_ok:
            mentioned = Labellers(cross_check).label(
                [(i, [sa.sentence for sa in a.sentences]) for i, a in checked_ok]
            )
            with_mentions = {
                id(a): _with_mentions(a.sentences, m)
                for (_, a), m in zip(checked_ok, mentioned, strict=True)
            }
        else:
            with_mentions = {}
        for item, assembled in done:
            sentences = with_mentions.get(id(assembled), assembled.sentences)
            written.append(_finish(how, item, sentences, assembled.reason, summary))
        log.write(written)
        summary.interrupted = summary.pending > 0
        summary.elapsed_s = round(time.monotonic() - started, 3)
    return summary


def _all_chunks(plan: Sequence[tuple[Prepared, list[Chunk]]]) -> Iterator[Chunk]:
    for _, chunks in plan:
        yield from chunks


def _with_mentions(
    sentences: tuple[SentenceAnnotation, ...], lexicon: tuple[SentenceAnnotation, ...]
) -> tuple[SentenceAnnotation, ...]:
    """The LLM's labels with the lexicon's mentions of each sentence attached."""
    return tuple(
        sa.model_copy(update={"mentions": lex.mentions})
        for sa, lex in zip(sentences, lexicon, strict=True)
    )
