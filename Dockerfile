# The mendline image: the `mendline` command and its runtime dependencies, nothing else.
# docker-compose.yml builds it once and runs every stage from it with a different command.

# Build the wheel in a throwaway stage, so neither the source tree nor the build backend ships.
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# MENDLINE_LOCAL_ROLE=none: in the image, the commands act with a token (MENDLINE_TOKEN),
# never as the local OS user; `-e MENDLINE_LOCAL_ROLE=admin` once makes the first admin.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MENDLINE_LOCAL_ROLE=none
RUN groupadd --system --gid 10001 mendline \
    && useradd --system --uid 10001 --gid mendline --create-home --home-dir /home/mendline \
       --shell /usr/sbin/nologin mendline
# The project's own dependencies only: no dev, test or devstack extras.
COPY --from=build /wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl && rm -rf /tmp/wheels
USER mendline
WORKDIR /home/mendline
CMD ["mendline", "--help"]
