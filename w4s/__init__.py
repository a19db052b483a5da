"""W4S: Weak-for-Strong Harnessing — a weak meta-agent writes workflows that harness a strong executor LLM."""

__version__ = "0.1.0"
