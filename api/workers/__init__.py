"""The worker registry: which workers exist, what they offer, and which were lost."""
