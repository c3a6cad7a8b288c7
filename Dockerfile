# The agent's image: `docker build -t redis-gitops:0.1.0 .` (the tag deploy/base/deployment.yaml names; set your
# registry with `kustomize edit set image redis-gitops=registry.example.com/redis-gitops:0.1.0` in an overlay).
#
# Stage 1 builds the release binary with the toolchain the project is tested with (Rust 1.95); libgit2 and libssh2
# are vendored, OpenSSL and zlib are Debian's (bookworm, the same release as the runtime image).
FROM rust:1.95-bookworm AS build
# Build tools of this stage only (nothing of it reaches the image); Debian supersedes exact versions within a
# release, so pinning them would break the build, not make it reproducible.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin redis-gitops \
    && install -D -m 0755 target/release/redis-gitops /out/redis-gitops \
    && multiarch="$(gcc -print-multiarch)" \
    && install -D -m 0644 "/lib/$multiarch/libz.so.1" "/out/lib/$multiarch/libz.so.1"

# Stage 2: Debian's distroless base has glibc, libgcc, OpenSSL's libssl, CA certificates and tzdata, and nothing else
# (no shell, no package manager); zlib, which libgit2 needs, comes from the build stage. `nonroot` runs as UID/GID
# 65532, the user the Deployment's securityContext names.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/lib/ /lib/
COPY --from=build /out/redis-gitops /usr/local/bin/redis-gitops
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/redis-gitops"]
CMD ["agent"]
