"""Recipes and templates: registry, rendering, prefix-cache layout, strictness, seeded content."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.plan import Planner, PlanRequest
from engine.recipes import (
    PROMPTS_DIR,
    CompiledTemplate,
    compiled_template,
    get_recipe,
    recipes,
    render_messages,
)
from engine.spec import GenerationSpec
from kg.store import GraphStore
from kg.store.falkor_store import FalkorStore
from loaders.seed import CURATED, seed
from tests.engine_graph import AD, FLU, GAD, MDD, open_embedded, open_engine_store

APPLICABLE = {
    "dualalign": [AD],
    "medsyn": [AD, MDD, GAD, FLU],
    "mh_report": [MDD, GAD],
    "unguided": [AD, MDD, GAD, FLU],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalkorStore]:
    st = open_engine_store(tmp_path_factory.mktemp("recipes") / "graph.db")
    yield st
    st.close()


def _specs(store: GraphStore, recipe: str, disease: str, n: int = 20) -> list[GenerationSpec]:
    return list(
        Planner(store, PlanRequest(recipe=recipe, disease=(disease,), n=n, seed=3)).iter_specs()
    )


def test_registry_and_template_hashes() -> None:
    assert set(recipes()) == {"dualalign", "medsyn", "mh_report", "unguided"}
    for name, recipe in recipes().items():
        source = (PROMPTS_DIR / recipe.template).read_bytes()
        assert compiled_template(name).hash == hashlib.sha256(source).hexdigest()
        assert recipe.paper and recipe.description
    assert get_recipe("dualalign").params.keyword_multiplier == 5.0
    with pytest.raises(EngineError, match="unknown recipe"):
        get_recipe("nope")


@pytest.mark.parametrize(
    ("recipe", "disease"), [(r, d) for r, ds in APPLICABLE.items() for d in ds]
)
def test_every_recipe_renders_for_every_fixture_disease(
    store: GraphStore, recipe: str, disease: str
) -> None:
    specs = _specs(store, recipe, disease)
    systems = set()
    for spec in specs:
        messages = render_messages(spec)
        assert [m["role"] for m in messages] == ["system", "user"]
        assert all(m["content"].strip() for m in messages)
        systems.add(messages[0]["content"])
        user = messages[1]["content"]
        if recipe != "unguided":
            assert spec.disease in user
        for k in spec.keywords:
            assert f'"{k.text}" ({k.category})' in user
        for s in spec.symptoms:
            assert s.name in user
        for section in spec.sections:
            assert section.title in user
        if spec.examples:
            assert spec.examples[0].text in user
        if spec.persona is not None:
            for attr, value in spec.persona.attributes.items():
                assert value in user or (attr == "age_group" and spec.persona.age is not None)
            if spec.persona.age is not None:
                assert f"Age: {spec.persona.age} years" in user
    assert len(systems) == 1  # static instructions: identical for every record


def test_system_message_is_the_same_for_every_disease(store: GraphStore) -> None:
    for recipe, diseases in APPLICABLE.items():
        systems = {render_messages(_specs(store, recipe, d, 1)[0])[0]["content"] for d in diseases}
        assert len(systems) == 1, recipe


def test_unguided_gives_the_disease_name_only(store: GraphStore) -> None:
    spec = _specs(store, "unguided", AD, 1)[0]
    assert spec.persona is None and not spec.keywords and not spec.symptoms
    assert render_messages(spec)[1]["content"] == (
        "Write a clinical note for a patient with Fixture Alzheimer disease."
    )


def test_a_missing_template_variable_is_an_error() -> None:
    source = "{% block system %}static{% endblock %}{% block user %}{{ nowhere }}{% endblock %}"
    template = CompiledTemplate("broken.j2", source)
    with pytest.raises(EngineError, match="'nowhere' is undefined"):
        template.messages({"disease": "x"})
    with pytest.raises(EngineError, match="undefined"):
        CompiledTemplate(
            "static.j2",
            "{% block system %}{{ disease }}{% endblock %}{% block user %}u{% endblock %}",
        )
    with pytest.raises(EngineError, match="missing block"):
        CompiledTemplate("noblocks.j2", "just text")
    with pytest.raises(EngineError, match="has no attribute 'nothing'"):  # of objects, too
        CompiledTemplate(
            "attr.j2",
            "{% block system %}s{% endblock %}{% block user %}{{ spec.nothing }}{% endblock %}",
        ).messages({"spec": object()})


def test_a_changed_template_is_detected(store: GraphStore) -> None:
    spec = _specs(store, "medsyn", AD, 1)[0]
    stale = spec.model_copy(update={"template_hash": "0" * 64})
    with pytest.raises(EngineError, match="plan again"):
        render_messages(stale)


def test_recipe_parameters_are_checked(store: GraphStore) -> None:
    with pytest.raises(EngineError, match="foo"):
        Planner(store, PlanRequest(recipe="medsyn", icd=("G30.9",), n=1, seed=0, params={"foo": 1}))
    with pytest.raises(EngineError, match="symptom_temperature"):
        Planner(
            store,
            PlanRequest(
                recipe="medsyn", icd=("G30.9",), n=1, seed=0, params={"symptom_temperature": 0}
            ),
        )
    planner = Planner(
        store,
        PlanRequest(
            recipe="dualalign", icd=("G30.9",), n=1, seed=0, params={"scheme": "jmir-adrd"}
        ),
    )
    assert next(planner.iter_specs()).scheme == "jmir-adrd"


def test_dualalign_prefers_its_own_category_scheme(store: GraphStore) -> None:
    spec = _specs(store, "dualalign", AD, 1)[0]
    assert spec.scheme == "dualalign"  # although jmir-adrd has more observations
    assert spec.window is not None and not spec.window.diagnosed
    assert "before the diagnosis" in spec.window.phrase


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalkorStore]:
    """The catalogue, the Symptom Ontology (curated modules reuse its terms) and every
    curated module."""
    st = open_embedded(tmp_path_factory.mktemp("seed") / "graph.db")
    seed(st, ["catalogue", "symp", *CURATED])
    yield st
    st.close()


def test_every_recipe_renders_for_every_seeded_disease(seeded: GraphStore) -> None:
    from engine.profile import Catalogue

    rendered: dict[str, int] = dict.fromkeys(recipes(), 0)
    for row in Catalogue(seeded).rows:
        if not row["codes"]:
            continue
        for recipe in recipes():
            request = PlanRequest(recipe=recipe, disease=(row["disease_id"],), n=5, seed=1)
            try:
                planner = Planner(seeded, request)
            except EngineError as err:  # only a recipe the disease has no content for
                assert any(
                    reason in str(err)
                    for reason in ("no trajectory windows", "F-codes", "no report_section")
                ), err
                continue
            for spec in planner.iter_specs():
                assert render_messages(spec)[1]["content"]
            rendered[recipe] += 1
    assert rendered["dualalign"] >= 1  # Alzheimer's disease
    assert rendered["mh_report"] >= 10  # the mental-health F-codes
    assert rendered["medsyn"] == rendered["unguided"] >= 12


def test_prompts_dir_holds_only_registered_templates() -> None:
    templates = {p.name for p in Path(PROMPTS_DIR).glob("*.j2")}
    assert templates == {r.template for r in recipes().values()}
