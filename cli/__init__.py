"""The techbridge command-line tool: one command for everything a person does."""
