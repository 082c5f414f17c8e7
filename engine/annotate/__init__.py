"""Sentences, labels and the checks that turn generated notes into labelled training data."""
