"""Running untrusted workflow code: the helper API it sees, the worker process it runs in, and the pool of
workers the runner drives. Nothing here runs generated code in the runner's own process."""
