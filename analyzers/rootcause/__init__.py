"""Root cause: the Analyser interface, the offline heuristic analyser with its knowledge base,
the LLM analyser on any OpenAI-compatible endpoint with the prompt it sends, and the risks
found in a suggested fix."""

from mendline.analyzers.rootcause.analyser import Analyser
from mendline.analyzers.rootcause.heuristic import HeuristicAnalyser
from mendline.analyzers.rootcause.llm import (
    ChatClient,
    LLMAnalyser,
    MemoryLedger,
    endpoint_auth,
)
from mendline.analyzers.rootcause.prompt import build_prompt
from mendline.analyzers.rootcause.risks import fix_risks

__all__ = [
    "Analyser",
    "ChatClient",
    "HeuristicAnalyser",
    "LLMAnalyser",
    "MemoryLedger",
    "build_prompt",
    "endpoint_auth",
    "fix_risks",
]
