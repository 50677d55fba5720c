# syntax=docker/dockerfile:1
# statuslist: multi-stage build. The dependency layer is cached: it only
# rebuilds when Cargo.toml or Cargo.lock change.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# pkg-config and a C toolchain for the build scripts of aws-lc-sys and ring;
# flate2 runs on zlib-rs (pure Rust), so no C zlib is linked.
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config build-essential \
 && rm -rf /var/lib/apt/lists/*

# 1. Dependencies only, against a stub crate: every declared target gets an
#    empty file, so this layer depends on Cargo.toml and Cargo.lock alone.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && for b in $(awk '/^\[\[bench\]\]/{getline; gsub(/name = |"/, ""); print}' Cargo.toml); do \
      echo 'fn main() {}' > "benches/$b.rs"; \
    done \
 && cargo build --release --locked --bin statuslist \
 && rm -rf src benches

# 2. The real sources.
COPY src ./src
COPY benches ./benches
COPY examples ./examples
# Bump mtimes so cargo rebuilds the crate, not the cached stub.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin statuslist \
 && cp target/release/statuslist /statuslist

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/statuslist --create-home statuslist \
 && mkdir -p /etc/statuslist \
 && chown statuslist /var/lib/statuslist
COPY --from=build /statuslist /usr/local/bin/statuslist
USER statuslist
WORKDIR /var/lib/statuslist
# Configuration (statuslist.toml, the signing key) and data (the embedded
# store, or nothing with Redis) live on volumes.
VOLUME ["/etc/statuslist", "/var/lib/statuslist"]
ENV STATUSLIST_CONFIG=/etc/statuslist/statuslist.toml \
    STATUSLIST_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["statuslist"]
CMD ["serve"]
