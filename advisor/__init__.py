"""Career Advisor: answers questions about the ML-engineer career from a local corpus, with citations."""

from advisor.chat import Advisor
from advisor.config import Settings
from advisor.errors import AdvisorError
from advisor.index import BuildReport, Index, IndexStatus, apply, build, index_status
from advisor.plan import BuildPlan, plan
from advisor.retrieve import Retriever
from advisor.types import Answer, Chunk, Citation, Document, Hit, Skipped

__all__ = [
    "Advisor",
    "AdvisorError",
    "Answer",
    "BuildPlan",
    "BuildReport",
    "Chunk",
    "Citation",
    "Document",
    "Hit",
    "Index",
    "IndexStatus",
    "Retriever",
    "Settings",
    "Skipped",
    "apply",
    "build",
    "index_status",
    "plan",
]
