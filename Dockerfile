# syntax=docker/dockerfile:1
# AtlasHub in a container: the compiled binary plus Postgres 15 (and pgvector) for the native engine.
#
#   docker build -t atlashub .
#   docker run -d --name atlashub --init --shm-size=256m -p 127.0.0.1:8080:8080 -v atlashub-data:/data atlashub
#   docker exec -it atlashub atlashub admin create --email you@example.com
#
# --init reaps Postgres processes orphaned if Postgres itself is killed; --shm-size because Postgres
# keeps shared memory in /dev/shm (64 MB by default in Docker). Use `docker exec` for CLI commands and
# never mount one data volume into two containers at once: AtlasHub finds a running Postgres by its
# pid, which another container cannot see. For the external engine instead, see docker-compose.yml.

ARG BUN_VERSION=1

# --- build: one self-contained executable for the platform being built --------------------------
FROM oven/bun:${BUN_VERSION} AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY build/patch-postgres.mjs ./build/
COPY build/patches ./build/patches
# Dev dependencies too: Vite builds the admin UI, which the binary embeds (build/embed-ui.ts).
RUN bun install --ignore-scripts && bun build/patch-postgres.mjs
COPY tsconfig.json ./
COPY migrations ./migrations
COPY server ./server
COPY ui ./ui
COPY build/embed-ui.ts ./build/
RUN bun --bun node_modules/.bin/vite build ui \
 && bun build/embed-ui.ts \
 && bun build --compile --minify --sourcemap=none server/ui/embedded.gen.ts --outfile /out/atlashub

# --- pgvector: not in bookworm, so build it the way `npm start` does (build/setup-postgres.sh) -----
FROM debian:bookworm-slim AS pgvector
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-common \
 && sed -ri 's/#(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf
COPY build/setup-postgres.sh /tmp/setup-postgres.sh
RUN bash /tmp/setup-postgres.sh \
 && mkdir /pgvector \
 && cd / && cp -a --parents \
      usr/lib/postgresql/15/lib/vector.so \
      usr/share/postgresql/15/extension/vector.control \
      usr/share/postgresql/15/extension/vector--*.sql \
      /pgvector/

# --- runtime ------------------------------------------------------------------------------------
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
# postgresql-common first, so installing postgresql-15 does not create the distribution's own cluster.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-common \
 && sed -ri 's/#(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=pgvector /pgvector/ /

# A non-root user: AtlasHub then runs Postgres as this same user (Postgres refuses to run as root).
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin atlashub \
 && mkdir -p /data \
 && chown atlashub:atlashub /data \
 && chmod 0711 /data
COPY --from=build /out/atlashub /usr/local/bin/atlashub

USER atlashub
WORKDIR /data
ENV ATLASHUB_DATA_DIR=/data \
    ATLASHUB_HOST=0.0.0.0
EXPOSE 8080
VOLUME /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/atlashub"]
CMD ["serve"]
