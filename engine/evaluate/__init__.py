"""Evaluation of a synthetic note set: diversity, fidelity, privacy, alignment.

Formulas in docs/evaluation.md.

Reads note records, a reference corpus and annotations only; never an LLM. Heavy libraries
(sentence-transformers, sacrebleu, datasketch) are imported by the functions that need them.
"""
