# The Vigil operator image: only the operator's runtime (the wheel's core dependencies), no
# demo, no dev tooling, no compiler. Build: `make image` (docker, podman or buildah), or
#   docker build -t ghcr.io/vigil-dev/vigil-operator:$(version from pyproject.toml) .
# Runs as user 65532 with a read-only root filesystem: nothing is written at run time except
# /tmp (the chart mounts an emptyDir there), and bytecode is compiled at build time.

# ---- builder: build the wheel and install it with its dependencies into a venv
FROM python:3.11.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m pip install "build==1.2.2.post1"
COPY pyproject.toml ./
COPY operator/ ./operator/
RUN python -m build --wheel --outdir /dist . \
 && python -m venv /opt/vigil \
 && /opt/vigil/bin/pip install /dist/vigil-*.whl \
 && /opt/vigil/bin/python -m compileall -q /opt/vigil/lib \
 && /opt/vigil/bin/vigil --help >/dev/null

# ---- runtime: the same Python, the venv, a non-root user
FROM python:3.11.11-slim-bookworm
ENV PATH=/opt/vigil/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    MALLOC_TRIM_THRESHOLD_=1048576 \
    MALLOC_MMAP_THRESHOLD_=262144 \
    HOME=/tmp
COPY --from=builder /opt/vigil /opt/vigil
USER 65532:65532
# 8080: /healthz and /readyz; 9102: /metrics
EXPOSE 8080 9102
ENTRYPOINT ["vigil"]
CMD ["operator"]
