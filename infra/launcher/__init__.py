"""In-image launcher: detects the GPUs, builds the plan with the core (no Pulumi), execs the engine."""
