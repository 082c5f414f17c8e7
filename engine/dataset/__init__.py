"""Datasets from annotated notes: sentence rows, splits by record, writers and the card."""
