# syntax=docker/dockerfile:1
#
# Sluice server image: `sluice serve` as a non-root user, with the sandbox's tools (bubblewrap,
# slirp4netns, iproute2, libseccomp) and one engine binary. Build:
#   docker build -t sluice .
#   docker build --build-arg ENGINE=opentofu --build-arg ENGINE_VERSION=1.8.5 -t sluice:tofu .
# Run (the sandbox needs user namespaces, which Docker's default seccomp/AppArmor profiles block,
# and /dev/net/tun for the runs' network — or SLUICE_RUNNER__NETWORK=false):
#   docker run --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
#     --device /dev/net/tun \
#     -e SLUICE_WEBHOOK_SECRET=... -e SLUICE_GITHUB_APP_ID=... \
#     -e SLUICE_GITHUB_APP_KEY_FILE=/run/secrets/app.pem -v sluice-data:/var/lib/sluice -p 4141:4141 sluice

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- build ------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libseccomp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Manifests first so the dependency layer is cached across source changes.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches tests/it \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && for b in sluice_bench server_bench; do echo 'fn main() {}' > "benches/$b.rs"; done \
 && touch tests/it/main.rs \
 && cargo build --release --locked --bin sluice \
 && rm -rf src benches tests
COPY src src
COPY runners runners
COPY migrations migrations
COPY benches benches
COPY tests/it tests/it
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin sluice

# ---- engine -----------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS engine
ARG ENGINE=terraform
ARG ENGINE_VERSION=1.9.8
ARG TARGETARCH=amd64
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl unzip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /tmp/engine
RUN set -eu; \
    case "$ENGINE" in \
      terraform) base="https://releases.hashicorp.com/terraform/${ENGINE_VERSION}"; \
                 zip="terraform_${ENGINE_VERSION}_linux_${TARGETARCH}.zip"; \
                 sums="terraform_${ENGINE_VERSION}_SHA256SUMS"; bin=terraform ;; \
      opentofu)  base="https://github.com/opentofu/opentofu/releases/download/v${ENGINE_VERSION}"; \
                 zip="tofu_${ENGINE_VERSION}_linux_${TARGETARCH}.zip"; \
                 sums="tofu_${ENGINE_VERSION}_SHA256SUMS"; bin=tofu ;; \
      *) echo "ENGINE must be terraform or opentofu" >&2; exit 1 ;; \
    esac; \
    curl -fsSLO "$base/$zip"; curl -fsSLO "$base/$sums"; \
    grep " $zip\$" "$sums" | sha256sum -c -; \
    unzip -q "$zip" "$bin"; install -m 0755 "$bin" "/usr/local/bin/$bin"

# ---- runtime ----------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap slirp4netns iproute2 libseccomp2 git ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/sluice --create-home sluice
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
COPY --from=engine /usr/local/bin/ /usr/local/bin/
COPY runners /usr/share/sluice/runners
USER sluice:sluice
WORKDIR /var/lib/sluice
ENV SLUICE_DATA_DIR=/var/lib/sluice/data \
    SLUICE_RUNNER__JOBS_DIR=/var/lib/sluice/jobs \
    SLUICE_LISTEN=0.0.0.0:4141
EXPOSE 4141
VOLUME ["/var/lib/sluice"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/sluice"]
CMD ["serve"]
