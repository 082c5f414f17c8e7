"""The generation runtime: jobs through a backend into resumable JSONL with provenance."""

from engine.runner.cache import RequestCache
from engine.runner.output import manifest_path, read_records
from engine.runner.records import GenerationJob, NoteRecord
from engine.runner.run import RunConfig, Runner, RunSummary

__all__ = [
    "GenerationJob",
    "NoteRecord",
    "RequestCache",
    "RunConfig",
    "RunSummary",
    "Runner",
    "manifest_path",
    "read_records",
]
