"""RLAO: the meta-agent trained offline on collected trajectories by reward-weighted regression.

``dataset`` turns trajectory records into tokenized, label-masked, weighted examples; ``hf`` turns an embedded
model (GGUF) or a store folder into something transformers can load. torch and transformers are imported only
inside the functions that need them: the core library runs without the ``train`` extra.
"""
