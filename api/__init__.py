"""Tunery's API: the OpenAI fine-tuning surface over FastAPI. Imports neither torch nor worker/."""
