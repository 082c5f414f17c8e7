"""The dataset's explicit features and its three forms: JSONL, Parquet, ``datasets`` on disk.

One ``DatasetDict`` (one ``Dataset`` per non-empty split, rows in a fixed order) is written
three ways by the libraries themselves: ``to_json`` (pandas), ``to_parquet`` (pyarrow, with
the features in the schema metadata, so ``datasets`` reads the class labels back) and
``save_to_disk``. Empty splits are left out: ``load_from_disk`` cannot read one back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, List, Value
from datasets.utils.logging import disable_progress_bar

from engine.annotate.model import Mention
from engine.dataset.rows import BINARY_NAMES, LabelScheme
from engine.dataset.splits import SPLITS

JSONL_DIR = "jsonl"
PARQUET_DIR = "parquet"
HF_DIR = "hf"


def _value(annotation: Any) -> Value:
    return Value("bool" if annotation is bool else "int32" if annotation is int else "string")


#: a lexicon mention: the contract's fields (bool flags, int offsets, strings)
_MENTION = {name: _value(f.annotation) for name, f in Mention.model_fields.items()}


def features(scheme: LabelScheme, persona_keys: tuple[str, ...]) -> Features:
    """Every column, in order, with its type; the labels as ``ClassLabel``s."""
    string, int32 = Value("string"), Value("int32")
    return Features(
        {
            "record_id": string,
            "sentence_index": int32,
            "text": string,
            "start": int32,
            "end": int32,
            "section": string,
            "label": ClassLabel(names=list(scheme.names)),
            "label_name": string,
            "category_id": string,
            "binary_label": ClassLabel(names=list(BINARY_NAMES)),
            "keywords": List(string),
            "mentions": List(_MENTION),
            "age": int32,
            "age_at_diagnosis": int32,
            "sex": string,
            **{f"persona_{key}": string for key in persona_keys},
            "risk_factors": List(string),
            "recipe": string,
            "icd_code": string,
            "icd_title": string,
            "disease_id": string,
            "window_name": string,
            "window_order": int32,
            "window_diagnosed": Value("bool"),
            "visit_months": Value("float64"),
            "patient_id": string,
            "visit_index": int32,
            "visit_day": int32,
            "backend": string,
            "model": string,
            "kg_hash": string,
            "generation_fingerprint": string,
            "note_fingerprint": string,
            "annotation_fingerprint": string,
            "annotator": string,
            "annotation_backend": string,
            "annotation_model": string,
            "review": Value("bool"),
        }
    )


def dataset_dict(rows_by_split: dict[str, list[dict[str, Any]]], feats: Features) -> DatasetDict:
    """One ``Dataset`` per non-empty split, in split order, with ``feats``.

    Rows already hold class ids, so the Arrow table is built by pyarrow from the features'
    schema directly (``Dataset.from_list`` would encode every value in Python).
    """
    schema = feats.arrow_schema
    return DatasetDict(
        {
            name: Dataset(
                pa.Table.from_pylist(rows_by_split[name], schema=schema),
                info=DatasetInfo(features=feats),
            )
            for name in SPLITS
            if rows_by_split.get(name)
        }
    )


def write_all(data: DatasetDict, directory: Path) -> None:
    """``jsonl/SPLIT.jsonl``, ``parquet/SPLIT.parquet`` and ``hf/`` under ``directory``."""
    disable_progress_bar()
    for sub in (JSONL_DIR, PARQUET_DIR):
        (directory / sub).mkdir()
    for name, split in data.items():
        split.to_json(directory / JSONL_DIR / f"{name}.jsonl", lines=True, force_ascii=False)
        split.to_parquet(directory / PARQUET_DIR / f"{name}.parquet")
    data.save_to_disk(str(directory / HF_DIR))
