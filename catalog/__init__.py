"""What Tunery offers, defined once: the dataset formats, the fine-tuning methods and the recipe types.

Torch-free and free of api/ and worker/: the API (validation, schemas, rules), the worker and the
trainer all import these definitions, so that they cannot disagree.
"""
