# kubegate: a two-stage build. The dependency layer is cached separately from the sources (a stub
# crate is built first). The runtime image holds the binary, the C libraries it links, CA
# certificates and a passwd entry, and nothing else: no shell, no package manager, no build tools
# (about 31 MB). kubegate runs as an unprivileged user and writes nothing to its file system, so
# it runs with a read-only root.
#
# Build arguments: KUBEGATE_COMMIT (what `kubegate --version` names; the build has no .git),
# KUBEGATE_VERSION and KUBEGATE_SOURCE (OCI labels). scripts/image-check builds and runs this file
# with podman.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
ENV CARGO_TERM_COLOR=never
# 1. Dependencies only: a stub crate with the real manifests. The stub benches and test stay (the
# manifest names them; only the binary is built).
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src benches tests/api migrations \
    && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && for b in token_verification audit_append gateway console; do echo 'fn main() {}' > "benches/$b.rs"; done \
    && echo '' > tests/api/main.rs \
    && cargo build --profile production --locked --features otel --bin kubegate \
    && rm -rf src
# 2. The service itself.
COPY src src
COPY migrations migrations
COPY console console
ARG KUBEGATE_COMMIT=unknown
# `otel` compiles OpenTelemetry trace export in; it stays off unless KUBEGATE_OTEL_ENDPOINT is set.
RUN touch src/main.rs src/lib.rs && cargo build --profile production --locked --features otel --bin kubegate
# 3. The runtime's root: the binary and the shared libraries the loader will ask for (from ldd),
# the CA bundle (OIDC discovery and JWKS over HTTPS), and the user kubegate runs as.
RUN mkdir -p /rootfs/usr/local/bin /rootfs/etc/ssl/certs /rootfs/tmp \
    && cp target/production/kubegate /rootfs/usr/local/bin/kubegate \
    && for lib in $(ldd target/production/kubegate | grep -o '/[^ ]*'); do cp --parents -L "$lib" /rootfs; done \
    && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
    && echo 'kubegate:x:10001:10001:kubegate:/nonexistent:/usr/sbin/nologin' > /rootfs/etc/passwd \
    && echo 'kubegate:x:10001:' > /rootfs/etc/group \
    && echo 'hosts: files dns' > /rootfs/etc/nsswitch.conf \
    && chmod 1777 /rootfs/tmp \
    && chroot /rootfs /usr/local/bin/kubegate --version

FROM scratch AS runtime
ARG KUBEGATE_VERSION=0.1.0
ARG KUBEGATE_COMMIT=unknown
ARG KUBEGATE_SOURCE=https://github.com/kubegate/kubegate
LABEL org.opencontainers.image.title="kubegate" \
      org.opencontainers.image.description="A safe, audited REST door to Kubernetes clusters" \
      org.opencontainers.image.version="${KUBEGATE_VERSION}" \
      org.opencontainers.image.revision="${KUBEGATE_COMMIT}" \
      org.opencontainers.image.source="${KUBEGATE_SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /rootfs /
USER 10001:10001
ENV KUBEGATE_LISTEN=0.0.0.0:8080 \
    KUBEGATE_LOG_FORMAT=json \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kubegate"]
CMD ["serve"]
