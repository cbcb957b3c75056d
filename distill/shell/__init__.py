"""What every command line shares: the job runner, the pre-flight checks, progress, torchrun, one-line errors."""
