# One image for every Larder service: `docker run larder:local order|stock|notification|delivery|all|migrate`.
# Used by docker-compose.yml (`docker compose up --build`).

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts (BuildKit) keep the registry and the target dir between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin larder \
    && cp target/release/larder /usr/local/bin/larder

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin larder
COPY --from=builder /usr/local/bin/larder /usr/local/bin/larder
USER larder
# The production profile: the service refuses to start without a JWT_SECRET of its own
# (at least 32 bytes), so a container never signs tokens with the published dev secret.
ENV HTTP_ADDR=0.0.0.0:3000 \
    LARDER_PROFILE=prod \
    LOG_FORMAT=json
EXPOSE 3000
ENTRYPOINT ["larder"]
CMD ["all"]
