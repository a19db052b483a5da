"""LLM access for the meta-agent and the executors: providers, prices, the spending ledger, retries."""
