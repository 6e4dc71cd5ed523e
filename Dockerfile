# kubeship's image: a static binary and the CA bundle on an empty base; no shell, no package
# manager. GitHub builds this file for `uses: ./` and `image: Dockerfile`; releases push the
# same image to GHCR and pin it by digest in action.yml (see .github/workflows/release.yml).

# The builder is pinned by digest (the multi-platform index rust:1.95-bookworm pointed to), so a
# re-pushed tag cannot change what builds the release; update the digest with the version.
FROM docker.io/library/rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
WORKDIR /src
COPY . .
# musl, statically linked: a process starts in about half the time glibc's static start-up
# takes (its CPU-feature and cache probing traps to the hypervisor in a VM), and the binary is
# smaller. Names are resolved in process (src/dns.rs), not by musl's getaddrinfo, whose search
# rules differ from glibc's. musl-gcc builds ring's C code. The explicit --target keeps proc macros on the host.
# pack-relative-relocs (RELR): the start-up relocation of the position-independent binary
# reads 7 KB instead of 580 KB; ASLR stays.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
RUN target="$(uname -m)-unknown-linux-musl" \
    && rustup target add "$target" \
    && env "CC_$target=musl-gcc" RUSTFLAGS='-C link-arg=-Wl,-z,pack-relative-relocs' \
       cargo build --release --locked --target "$target" --bin kubeship \
    && cp "target/$target/release/kubeship" /kubeship \
    && /kubeship --version

FROM scratch
# The API server's CA usually comes from the kubeconfig; this bundle serves the kubeconfigs
# that rely on public roots (managed clusters' endpoints).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /kubeship /kubeship
LABEL org.opencontainers.image.title="kubeship" \
      org.opencontainers.image.description="Pin a freshly pushed image by digest on Kubernetes workloads and wait for the rollout" \
      org.opencontainers.image.source="https://github.com/kubeship/kubeship" \
      org.opencontainers.image.licenses="Apache-2.0"
# No USER: GitHub runs Docker actions as the image's user, and only root may write the
# runner's file-command files. No WORKDIR: the runner sets /github/workspace.
ENTRYPOINT ["/kubeship"]
