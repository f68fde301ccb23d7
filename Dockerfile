# The gpuyard image: the scheduler service, the remediator and the Ray worker, on the Ray
# base image of the same Ray version (2.60.0, Python 3.11).
#
#   dev (CPU, the dev-cpu overlay):
#     docker build -t gpuyard:dev .
#   GPU (the gpu-prod overlay): the CUDA flavour of the Ray image and PyPI's torch 2.13.0
#   (PyPI's Linux x86_64 torch wheel is the CUDA build):
#     docker build -t registry.example.com/gpuyard/gpuyard:0.1.0-cu128 \
#       --build-arg RAY_IMAGE=rayproject/ray:2.60.0-py311-cu128 \
#       --build-arg TORCH_INDEX=https://pypi.org/simple .
#
# NVML comes from the NVIDIA driver on the node (mounted by the NVIDIA container toolkit);
# nvidia-ml-py only binds to it.
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-cpu
FROM ${RAY_IMAGE}

ARG TORCH_VERSION=2.13.0
# CPU wheels for the dev image: a CUDA torch would add several GB for nothing
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

USER root
WORKDIR /opt/gpuyard
COPY pyproject.toml README.md LICENSE ./
COPY scheduler ./scheduler
COPY planner ./planner
COPY simulations ./simulations
COPY examples ./examples
# torch first, from the chosen index, so that installing gpuyard does not pull another build;
# the image runs the service, the remediator and Ray's workers: the service and k8s extras
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" \
 && pip install --no-cache-dir "/opt/gpuyard[service,k8s]" \
 && mkdir -p /var/lib/gpuyard && chown 1000:100 /var/lib/gpuyard

# the rayproject/ray images' user (uid 1000, gid 100)
USER 1000
WORKDIR /home/ray
ENV GPUYARD_HOME=/var/lib/gpuyard
