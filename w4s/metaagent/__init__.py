"""The weak meta-agent: prompts that form the MDP state, parsing of its actions, and its client."""
