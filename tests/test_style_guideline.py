"""Style guidelines in the graph reach the prompt (issue 17): length, sections and register
are rendered into the recipe's user message, and an edited guideline changes the prompt,
the template hash and the record fingerprint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.plan import Planner, PlanRequest
from engine.provenance import fingerprint
from engine.recipes import compiled_template, render_messages
from engine.spec import GenerationSpec
from kg.model import GuidedBy, Guideline
from kg.store.writer import write_batch
from tests.engine_graph import AD, engine_graph, open_embedded

STYLE = "KGS:gl/fx-style-soap"
TEXT = "Write one outpatient SOAP progress note.\n- Use the informant's words in S."


def _specs(
    path: Path, guideline: Guideline | None, recipe: str = "dualalign"
) -> list[GenerationSpec]:
    b = engine_graph()
    if guideline is not None:
        assert b.add_node(guideline) is None
        assert b.add_rel(GuidedBy(start=AD, end=guideline.id)) is None
    st = open_embedded(path)
    try:
        st.apply_schema()
        write_batch(st, b)
        return list(
            Planner(st, PlanRequest(recipe=recipe, icd=("G30.9",), n=3, seed=2)).iter_specs()
        )
    finally:
        st.close()


def _guideline(**changes: object) -> Guideline:
    data: dict[str, object] = {
        "id": STYLE,
        "title": "Style: SOAP note",
        "text": TEXT,
        "kind": "style",
        "note_type": "soap_note",
        "min_words": 150,
        "max_words": 400,
        "sections": ["Subjective", "Objective", "Assessment", "Plan"],
        "voice": "terse clinical prose",
    }
    return Guideline.model_validate(data | changes)


def _fingerprint(spec: GenerationSpec) -> str:
    return fingerprint(
        kg_hash=spec.kg_hash,
        recipe=spec.recipe,
        template_hash=spec.template_hash,
        backend="template",
        model="none",
        params={},
    )


def test_the_style_guideline_is_rendered_into_the_prompt(tmp_path: Path) -> None:
    spec = _specs(tmp_path / "a.db", _guideline())[0]
    user = render_messages(spec)[1]["content"]
    expected = "\n".join(
        [
            "Style guideline (Style: SOAP note):",
            "Write one outpatient SOAP progress note.",
            "- Use the informant's words in S.",
            "- Length: 150-400 words.",
            "- Sections, in this order: Subjective, Objective, Assessment, Plan.",
            "- Register: terse clinical prose.",
        ]
    )
    assert user.startswith(expected + "\n\nPatient:")
    # the hash: sha256 of the canonical JSON of the template file's hash and the guideline
    source = (Path(__file__).parents[1] / "engine" / "prompts" / "dualalign.j2").read_bytes()
    style = {
        "id": STYLE,
        "title": "Style: SOAP note",
        "text": TEXT,
        "min_words": 150,
        "max_words": 400,
        "sections": ["Subjective", "Objective", "Assessment", "Plan"],
        "voice": "terse clinical prose",
    }
    canonical = json.dumps(
        {"style": [style], "template": hashlib.sha256(source).hexdigest()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert spec.template_hash == hashlib.sha256(canonical.encode()).hexdigest()


def test_an_edited_guideline_changes_prompt_template_hash_and_fingerprint(tmp_path: Path) -> None:
    before = _specs(tmp_path / "a.db", _guideline())[0]
    after = _specs(tmp_path / "b.db", _guideline(max_words=250))[0]
    assert before.persona == after.persona and before.keywords == after.keywords
    user_before = render_messages(before)[1]["content"]
    user_after = render_messages(after)[1]["content"]
    assert "- Length: 150-400 words." in user_before
    assert "- Length: 150-250 words." in user_after
    assert user_before.replace("150-400", "150-250") == user_after
    assert before.template_hash != after.template_hash
    assert before.kg_hash != after.kg_hash
    assert _fingerprint(before) != _fingerprint(after)


def test_no_guideline_keeps_the_template_file_hash(tmp_path: Path) -> None:
    spec = _specs(tmp_path / "a.db", None)[0]
    assert spec.style == ()
    assert spec.template_hash == compiled_template("dualalign").hash
    assert not render_messages(spec)[1]["content"].startswith("Style guideline")


def test_a_guideline_for_another_note_type_is_not_used(tmp_path: Path) -> None:
    spec = _specs(tmp_path / "a.db", _guideline(), recipe="medsyn")[0]  # medsyn: anamnesis
    assert spec.style == ()
    assert "Style guideline" not in render_messages(spec)[1]["content"]


def test_a_spec_whose_style_was_altered_is_refused(tmp_path: Path) -> None:
    spec = _specs(tmp_path / "a.db", _guideline())[0]
    assert spec.style
    altered = spec.model_copy(
        update={"style": (spec.style[0].model_copy(update={"max_words": 999}),)}
    )
    with pytest.raises(EngineError, match="plan again"):
        render_messages(altered)
