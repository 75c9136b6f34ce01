"""Text generation backends (see rag_core.protocols.Generator); factory.py picks one."""

from rag_core.generators.openai_compat import OpenAICompatGenerator
from rag_core.generators.transformers import TransformersGenerator

__all__ = ["OpenAICompatGenerator", "TransformersGenerator"]
