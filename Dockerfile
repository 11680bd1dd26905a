# keel: one image for `keel serve`, `keel run` and `keel exchange` (choose by command).
#   docker build -t keel .
#   docker run --rm -p 8000:8000 -e KEEL_SERVICE__API_TOKEN=... keel serve
# The install step is the README's production install, word for word (tests/deploy checks it).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY src ./src
RUN python3 -m venv /opt/keel
ENV PATH=/opt/keel/bin:$PATH
RUN python3 -m pip install --no-cache-dir -c requirements.lock .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="keel" \
      org.opencontainers.image.description="signals to a risk-controlled portfolio to orders" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin keel
COPY --from=build /opt/keel /opt/keel
ENV PATH=/opt/keel/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KEEL_GENERAL__OUT_DIR=/home/keel/keel-out \
    KEEL_SERVICE__HOST=0.0.0.0
USER 10001:10001
WORKDIR /home/keel
EXPOSE 8000 9878 9880
# Liveness of the HTTP service (keel serve, or keel run --serve); compose and Kubernetes use
# /ready for readiness and override this for `keel exchange`.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('KEEL_SERVICE__PORT', '8000'), timeout=2)"]
ENTRYPOINT ["keel"]
CMD ["serve"]
