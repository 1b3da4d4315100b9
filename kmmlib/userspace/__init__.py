"""What user space sees: procps tools (free) and the process model."""
