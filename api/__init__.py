"""The ways in: the HTTP service, the `kb` command line, and their assembly from settings."""
