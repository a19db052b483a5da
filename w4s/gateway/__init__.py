"""The LLM gateway: the only holder of provider keys, between untrusted workflows and the providers."""
