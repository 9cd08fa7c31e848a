"""Checkpoints: the models saved at each epoch end, and who else may use them."""
