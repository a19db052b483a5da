"""Embedded default models: small real GGUF LLMs taken from package wheels, served on loopback by llama.cpp.

They let w4s run end to end with no API key, no network beyond the package index and no cluster: a weaker
meta-agent writes workflows and a stronger executor runs them, as in the paper, only at toy scale.
"""
