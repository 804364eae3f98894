"""jobrunner: declarative, GitOps-style device-management jobs for Eclipse Kura / ESF fleets."""

__version__ = "0.1.0"
