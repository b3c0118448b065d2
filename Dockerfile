# tokenbroker: the broker with every backend's SDK, as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /opt/tokenbroker
COPY pyproject.toml README.md ./
COPY service ./service
COPY backends ./backends
COPY policies ./policies
RUN pip install --no-compile '.[all]' \
    && useradd --system --uid 10001 --home-dir /var/lib/tokenbroker --create-home tokenbroker

USER tokenbroker
WORKDIR /var/lib/tokenbroker
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]

ENTRYPOINT ["tokenbroker", "serve", "--host", "0.0.0.0", "--port", "8080"]
CMD ["--config", "/etc/tokenbroker/config.yaml"]
