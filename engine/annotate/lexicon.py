"""The lexicon annotator: the graph's symptom keywords found in sentences, with ConText.

Every surface form of every symptom of the given profiles (name and synonyms, each slot
rendered for every voice: ``{spouse} worried about {possessive} memory`` gives "husband
worried about her memory", "wife worried about his memory", ...) is matched with spaCy's
``PhraseMatcher`` on the Porter stems (nltk) of the lower-cased tokens, so "repeating the
same stories" finds "repeats the same stories" and "confused" finds "confusion"; the words
must still follow each other. Overlapping matches keep the longest. medspaCy's ConText
(its rules, less a few that misfire on this domain, plus informant and relative cues) then
marks each match negated, uncertain ("possible"), hypothetical ("return if"), historical,
another person's (``family``: mother, brother, "family history") or told by an informant
(wife, son, daughter, caregiver, "family"); a cue inside the keyword itself does not count.

A sentence's label (``label_of``): mentions that are negated, hypothetical, historical or
another person's do not count; uncertain ones do. If a counted mention belongs to the
scheme's *informant category* or was told by an informant, the label is that category (the
AD protocol: "when both are present, prefer concern expressed by others"); otherwise the
category of the longest counted mention (the first on ties); with none, "no symptom". The
informant category is the one in which most symptoms are named for a relative, caregiver
or the family ("family reports repetition": DualAlign's "concern expressed by others");
none if no category qualifies, and then informant reports take their keyword's own
category.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from engine.annotate.model import Label, Mention, Sentence, SentenceAnnotation
from engine.errors import EngineError
from engine.profile import DiseaseProfile
from engine.samplers.surface import voices

#: ConText categories added to medspaCy's: a relative or carer who reports the patient's change
INFORMANT = "INFORMANT"
_INFORMANTS = [
    "wife", "husband", "spouse", "partner", "daughter", "daughters", "son", "sons",
    "granddaughter", "grandson", "niece", "nephew", "caregiver", "caregivers",
    "family", "fam", "friend", "neighbor", "neighbour", "informant", "collateral",
]  # fmt: skip
#: relatives whose own conditions are family history (``FAMILY``: another person's)
_RELATIVES = [
    "mother", "mom", "father", "dad", "brother", "brothers", "sister", "sisters", "sibling",
    "siblings", "aunt", "uncle", "cousin", "grandmother", "grandfather", "grandparent",
    "grandparents", "parent", "parents",
]  # fmt: skip
#: default ConText rules left out: symptom words in this domain or present-tense cues
_DROPPED = {
    "decline",
    "family",
    "presentation",
    "comes in with",
    "concerned about",
    "worried about",
    "risks of",  # packaged as one token "risks of", which never matches: re-added below
}
_ATTRS = {
    "NEGATED_EXISTENCE": {"is_negated": True},
    "POSSIBLE_EXISTENCE": {"is_uncertain": True},
    "HISTORICAL": {"is_historical": True},
    "HYPOTHETICAL": {"is_hypothetical": True},
    "FAMILY": {"is_family": True},
    INFORMANT: {"is_informant": True},
}
_INFORMANT_WORDS = re.compile(
    r"\{(?:spouse|relative)\}|\b(?:family|spouse|wife|husband|daughter|son|caregiver|informant"
    r"|neighbou?r|relatives?)\b",
    re.IGNORECASE,
)


class Term:
    """One rendered surface form and the symptom it names."""

    __slots__ = ("category_id", "symptom_id", "text")

    def __init__(self, text: str, symptom_id: str, category_id: str | None) -> None:
        self.text = text
        self.symptom_id = symptom_id
        self.category_id = category_id


@lru_cache(maxsize=1)
def _stem() -> Any:
    from nltk.stem.porter import PorterStemmer

    return lru_cache(maxsize=65536)(PorterStemmer().stem)


def _set_stems(doc: Any) -> Any:
    """Each token's lemma is the Porter stem of its lower-cased text (the match key); the
    doc is one sentence (ConText's scope)."""
    stem = _stem()
    for token in doc:
        token.lemma_ = stem(token.lower_)
        token.is_sent_start = token.i == 0
    return doc


def _context_rules() -> list[Any]:
    import medspacy
    from medspacy.context import ConTextRule

    path = Path(medspacy.__file__).resolve().parents[1] / "resources" / "en" / "context_rules.json"
    rules = [r for r in ConTextRule.from_json(str(path)) if r.literal not in _DROPPED]
    informants = [{"LOWER": {"IN": _INFORMANTS}}]
    relatives = [{"LOWER": {"IN": _RELATIVES}}]
    rules += [
        ConTextRule("informant", INFORMANT, pattern=informants, direction="FORWARD"),
        ConTextRule("relative", "FAMILY", pattern=relatives, direction="FORWARD"),
        *(
            ConTextRule(literal, "FAMILY", direction="FORWARD")
            for literal in ("family history", "family hx", "fhx", "fh")
        ),
        ConTextRule(";", "NEGATED_EXISTENCE", direction="TERMINATE"),
        ConTextRule(
            "risks of",
            "HYPOTHETICAL",
            pattern=[{"LOWER": {"IN": ["risk", "risks"]}}, {"LOWER": "of"}],
            direction="FORWARD",
        ),
    ]
    return rules


@lru_cache(maxsize=1)
def _nlp() -> Any:
    """medspaCy's tokenizer with ConText (our rule set), built once."""
    import medspacy
    from spacy.tokens import Span

    for attrs in _ATTRS.values():
        for name in attrs:
            if not Span.has_extension(name):
                Span.set_extension(name, default=False)
    nlp = medspacy.load(medspacy_enable=["medspacy_tokenizer"])
    context = nlp.add_pipe(
        "medspacy_context",
        # a cue inside a keyword ("can't follow group discussions") does not modify it
        config={"rules": None, "span_attrs": _ATTRS, "prune_on_target_overlap": True},
    )
    context.add(_context_rules())
    return nlp


def _matcher(patterns: dict[str, Sequence[str]]) -> Any:
    """A stem PhraseMatcher: match id ``key`` for each of its phrases."""
    from spacy.matcher import PhraseMatcher

    nlp = _nlp()
    matcher = PhraseMatcher(nlp.vocab, attr="LEMMA")
    for key, phrases in patterns.items():
        matcher.add(key, [_set_stems(nlp.make_doc(p)) for p in phrases])
    return matcher


class LexiconAnnotator:
    """Labels sentences from the graph's keywords (see the module docstring for the rule)."""

    def __init__(
        self,
        terms: Iterable[Term],
        categories: dict[str, str],
        scheme: str | None = None,
        informant_category: str | None = None,
    ) -> None:
        self.terms: dict[str, Term] = {}
        for term in terms:
            self.terms.setdefault(term.text.lower(), term)
        if not self.terms:
            raise EngineError("the lexicon annotator has no keywords (no symptoms in the profiles)")
        self.categories = dict(categories)
        self.scheme = scheme
        self.informant_category = informant_category
        self._matcher = _matcher({key: [key] for key in self.terms})

    @classmethod
    def from_profiles(
        cls,
        profiles: DiseaseProfile | Sequence[DiseaseProfile],
        scheme: str | None = None,
    ) -> LexiconAnnotator:
        """Every symptom form of ``profiles``, categorised in ``scheme`` (default: the first
        profile's most observed scheme)."""
        items = [profiles] if isinstance(profiles, DiseaseProfile) else list(profiles)
        if scheme is None:
            schemes = [s for p in items for s in p.schemes()]
            schemes += [c.scheme for p in items for s in p.symptoms for c in s.categories]
            scheme = schemes[0] if schemes else None
        terms: list[Term] = []
        categories: dict[str, str] = {}
        named: dict[str, list[bool]] = {}
        for profile in items:
            for symptom in profile.symptoms:
                category = symptom.category_in(scheme) if scheme else None
                if category is not None:
                    categories[category.id] = category.name
                    names = _INFORMANT_WORDS.search(symptom.name) is not None
                    named.setdefault(category.id, []).append(names)
                for form in symptom.surface_forms:
                    for text in dict.fromkeys(voices(form)):
                        terms.append(Term(text, symptom.id, category.id if category else None))
        shares = {c: sum(v) / len(v) for c, v in named.items()}
        informant = max(shares, key=lambda c: (shares[c], c), default=None)
        if informant is not None and shares[informant] <= 0.5:
            informant = None
        return cls(terms, categories, scheme, informant)

    def label(self, category_id: str | None) -> Label:
        if category_id is None:
            return Label()
        return Label(
            category_id=category_id, category=self.categories.get(category_id, category_id)
        )

    def annotate(self, text: str, sentences: Sequence[Sentence]) -> tuple[SentenceAnnotation, ...]:
        """Each sentence of ``text`` with its mentions (offsets into ``text``) and label."""
        return self.annotate_many([(text, sentences)])[0]

    def annotate_many(
        self, notes: Iterable[tuple[str, Sequence[Sentence]]], batch_size: int = 256
    ) -> list[tuple[SentenceAnnotation, ...]]:
        """``annotate`` for many notes: every sentence goes through one tokenizer pipe."""
        items = []
        for n, (text, sentences) in enumerate(notes):
            for s in sentences:
                if text[s.start : s.end] != s.text:
                    raise EngineError(
                        f"note {n}, sentence {s.index}: text is not note[{s.start}:{s.end}]"
                    )
            items.append(tuple(sentences))
        found = iter(self.find([s for sentences in items for s in sentences], batch_size))
        out = []
        for sentences in items:
            row = []
            for sentence in sentences:
                hits = next(found)
                row.append(
                    SentenceAnnotation(
                        sentence=sentence,
                        label=self.label(self.label_of(hits)),
                        mentions=tuple(h.mention for h in hits),
                    )
                )
            out.append(tuple(row))
        return out

    def label_of(self, hits: Sequence[Found]) -> str | None:
        """A sentence's category id from its hits (the rule in the module docstring)."""
        counted = [
            h for h in hits
            if not (m := h.mention).negated and not (m.hypothetical or m.historical or m.family)
        ]  # fmt: skip
        if not counted:
            return None
        informant = self.informant_category
        if informant is not None and any(
            h.informant or h.mention.category_id == informant for h in counted
        ):
            return informant
        best = max(counted, key=lambda h: (h.mention.end - h.mention.start, -h.mention.start))
        return best.mention.category_id

    def find(self, sentences: Sequence[Sentence], batch_size: int = 256) -> list[list[Found]]:
        """The keyword hits of each sentence, ConText flags set (offsets into the note)."""
        return _find(self._matcher, self.terms, sentences, batch_size)


class Found(NamedTuple):
    """A mention and whether ConText saw it told by an informant (not in the contract)."""

    mention: Mention
    informant: bool = False


def _find(
    matcher: Any, terms: dict[str, Term] | None, sentences: Sequence[Sentence], batch_size: int
) -> list[list[Found]]:
    """Matches of ``matcher`` in each sentence with ConText's flags; ``terms`` maps a match
    key to its symptom (None: the key is the keyword itself, see ``locate``)."""
    from spacy.tokens import Span
    from spacy.util import filter_spans

    nlp = _nlp()
    context = nlp.get_pipe("medspacy_context")
    out = []
    docs = nlp.tokenizer.pipe((s.text for s in sentences), batch_size=batch_size)
    for sentence, doc in zip(sentences, docs, strict=True):
        _set_stems(doc)
        doc.ents = filter_spans([Span(doc, a, b, label=key) for key, a, b in matcher(doc)])
        if doc.ents:  # ConText only where there is something to modify
            context(doc)
        hits = []
        for ent in doc.ents:
            term = terms[ent.label_] if terms is not None else None
            mention = Mention(
                start=sentence.start + ent.start_char,
                end=sentence.start + ent.end_char,
                text=ent.text,
                symptom_id=term.symptom_id if term else ent.label_,
                category_id=term.category_id if term else None,
                negated=ent._.is_negated,
                uncertain=ent._.is_uncertain,
                hypothetical=ent._.is_hypothetical,
                historical=ent._.is_historical,
                family=ent._.is_family and not ent._.is_informant,
            )
            hits.append(Found(mention, bool(ent._.is_informant)))
        out.append(hits)
    return out


def locate(keywords: Sequence[str], sentences: Sequence[Sentence]) -> dict[str, tuple[int, ...]]:
    """The indexes of the sentences that realise each keyword (same stems, case-insensitive;
    negation is not considered): the constraint check's question."""
    wanted = [k for k in dict.fromkeys(keywords) if k.strip()]
    if not wanted:
        return {}
    matcher = _matcher({k: [k] for k in wanted})
    out: dict[str, list[int]] = {k: [] for k in wanted}
    for sentence, hits in zip(sentences, _find_all(matcher, sentences), strict=True):
        for key in hits:
            if sentence.index not in out[key]:
                out[key].append(sentence.index)
    return {k: tuple(v) for k, v in out.items()}


def _find_all(matcher: Any, sentences: Sequence[Sentence]) -> list[list[str]]:
    """Every (overlapping) match key of ``matcher`` in each sentence."""
    nlp = _nlp()
    out = []
    for doc in nlp.tokenizer.pipe(s.text for s in sentences):
        _set_stems(doc)
        out.append([nlp.vocab.strings[key] for key, _, _ in matcher(doc)])
    return out
