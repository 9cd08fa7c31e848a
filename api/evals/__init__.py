"""Evals: OpenAI's Evals API (client.evals) on the project's own models and data."""
