"""One cycle against the ports: read, prepare, plan, apply (handlers, escrow, quarantine), verdict."""
