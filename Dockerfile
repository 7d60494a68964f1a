# syntax=docker/dockerfile:1
# Multi-stage build: a release binary, then a small distroless image with no shell, run as
# non-root. (Not buildable on the project's own machines, which have no container engine.)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY examples ./examples
RUN cargo build --release --locked --bin qdrant-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/qdrant-operator /usr/local/bin/qdrant-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/qdrant-operator"]
