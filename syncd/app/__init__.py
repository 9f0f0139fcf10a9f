"""The application shell: command line, daemon, health, provisioning on demand, drift, demo."""
