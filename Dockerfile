# syntax=docker/dockerfile:1
# The autoscaler image: `autoscaler run` by default; the same image serves
# `autoscaler bridge` and `autoscaler loadgen` (see docker-compose.yml).
# Configuration comes from a mounted file (/etc/autoscaler/autoscaler.yaml) and the
# environment; nothing secret is baked in.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- build: install the package and its pinned dependencies into a virtualenv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first: this layer is reused until requirements.txt changes.
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY pyproject.toml prometheus.yml ./
# autoscaler/demo/ links to these: the wheel packages them for `autoscaler demo`.
COPY rules/*.yml ./rules/
COPY examples/local.yaml ./examples/
COPY autoscaler ./autoscaler
RUN pip install --no-deps . \
    && autoscaler --help > /dev/null

# ---- runtime: the virtualenv only, no compilers, no sources, no pip cache
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AUTOSCALER_CONFIG=/etc/autoscaler/autoscaler.yaml
RUN groupadd --system --gid 10001 autoscaler \
    && useradd --system --uid 10001 --gid autoscaler --no-create-home \
        --home-dir /var/lib/autoscaler --shell /usr/sbin/nologin autoscaler \
    && mkdir -p /etc/autoscaler /var/lib/autoscaler/run \
    && chown -R autoscaler:autoscaler /var/lib/autoscaler
COPY --from=build /opt/venv /opt/venv
# Numeric, so a runtime (Kubernetes runAsNonRoot) can tell it is not root.
USER 10001:10001
WORKDIR /var/lib/autoscaler
# The local provider's state (run_dir) lives here: keep it on a volume.
VOLUME ["/var/lib/autoscaler"]
EXPOSE 9100
# slim has no curl: ask Python. Only meaningful for `run` (the bridge and loadgen
# services override or disable it in docker-compose.yml).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9100/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["autoscaler"]
CMD ["run", "--config", "/etc/autoscaler/autoscaler.yaml"]
