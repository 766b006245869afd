"""The centre service: local intake, and scheduled sync with the hub."""
