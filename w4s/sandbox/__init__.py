"""In-cluster sandboxes for untrusted workflow code: manifests that confine warm workers to the run's gateway."""
