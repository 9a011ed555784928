# kubegate: a two-stage build. The dependency layer is cached separately from the sources (a stub
# crate is built first), the runtime image is Debian slim with CA certificates and no build tools,
# and kubegate runs as an unprivileged user.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
ENV CARGO_TERM_COLOR=never
# 1. Dependencies only: a stub crate with the real manifests.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src benches tests/api migrations \
    && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && for b in token_verification audit_append gateway; do echo 'fn main() {}' > "benches/$b.rs"; done \
    && echo '' > tests/api/main.rs \
    && cargo build --profile production --locked --features otel --bin kubegate \
    && rm -rf src benches tests
# 2. The service itself.
COPY src src
COPY migrations migrations
# `otel` compiles OpenTelemetry trace export in; it stays off unless KUBEGATE_OTEL_ENDPOINT is set.
RUN touch src/main.rs src/lib.rs && cargo build --profile production --locked --features otel --bin kubegate

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin kubegate
COPY --from=build /src/target/production/kubegate /usr/local/bin/kubegate
USER 10001:10001
ENV KUBEGATE_LISTEN=0.0.0.0:8080 \
    KUBEGATE_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kubegate"]
CMD ["serve"]
