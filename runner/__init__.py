"""attach-runner: attach files to OpenAI assistants and vector stores in bulk."""

__version__ = "0.1.0"
