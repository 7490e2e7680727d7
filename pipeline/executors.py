"""Where training runs: the GPU queue, pool and Kubernetes pod override for training tasks.

- Local executor (the default): queue and pool are the only things that apply; the pool
  (``gpu_pool``, created by ``make run`` / ``make airflow-ui`` / the compose init) limits
  how many trainings run at once.
- CeleryExecutor: a worker started with ``airflow celery worker --queues gpu`` on the GPU
  machine takes the training tasks; the others stay on the default queue.
- KubernetesExecutor: with ``gpu_pod_override`` on, each training task's pod asks for
  ``gpus_per_training_task`` ``nvidia.com/gpu``; with more than one, the task trains in one
  process per GPU (``training.processes`` 0, see pipeline/training/launch.py).
"""

from __future__ import annotations

from typing import Any


def gpu_pod_override(gpus: int = 1) -> Any:
    """A pod spec whose base container asks Kubernetes for ``gpus`` NVIDIA GPUs."""
    from kubernetes.client import models as k8s  # only where the KubernetesExecutor runs

    resources = k8s.V1ResourceRequirements(limits={"nvidia.com/gpu": str(gpus)}, requests={"nvidia.com/gpu": str(gpus)})
    return k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", resources=resources)]))


def gpu_executor_config(settings: Any) -> dict[str, Any]:
    """``executor_config`` for training tasks: the pod override when it is switched on."""
    return {"pod_override": gpu_pod_override(settings.gpus_per_training_task)} if settings.gpu_pod_override else {}
