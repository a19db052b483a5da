"""The RLAO trainer: RWR (and the SFT ablation) on TRL and accelerate, run by the MetaAgentTraining Job.

``train`` is the entry point (``python -m training_jobs.train``); ``loss`` holds the RWR loss, ``trainer`` the
SFTTrainer subclass and collator, ``checkpoints`` the store layout and resume, ``status`` the progress reports.
It needs the ``train`` extra; the core library never imports it.
"""
