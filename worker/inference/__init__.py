"""The embedded inference backend (`tunery inference`): transformers + peft behind an OpenAI-compatible
HTTP surface, one copy of each base model and fine-tuned models loaded on demand. Its own process: the
API forwards to it over HTTP and never imports torch."""
