# Orchestra's bot process in a container: `docker build -t orchestra .` then
# `docker run -v orchestra-data:/data -e TELEGRAM_BOT_TOKEN=... orchestra` (bots.yaml goes in /data).
FROM python:3.11-slim-bookworm

# tmux runs the agents and git is what they work in (the README's `apt-get install tmux git`);
# tini is PID 1 so the tmux server's exited children are reaped and SIGTERM reaches the bot.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tmux=3.3a-* git=1:2.39.* tini=0.19.* \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/orchestra
# bots.yaml too: core/default_bots.yaml (the embedded defaults) is a symlink to it.
COPY pyproject.toml README.md bots.yaml ./
COPY core ./core
COPY bot ./bot
# The README's install step, without pip's cache in the image.
RUN pip install --no-cache-dir .

# A non-root user owns the data directory; 700 because it holds task logs and the store.
RUN groupadd --gid 10001 orchestra \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin orchestra \
    && mkdir -p /data \
    && chown orchestra:orchestra /data \
    && chmod 700 /data
ENV ORCHESTRA_HOME=/data \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
USER 10001:10001
WORKDIR /data

# Cheap: it only asks whether a bot holds the engine lock of /data.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["orchestra", "health"]

# Exec form: the bot gets SIGTERM directly (through tini) and stops its transports in order.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["orchestra", "bot"]
