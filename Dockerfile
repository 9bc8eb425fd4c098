# Build: docker build -t underpass .
# The build and run images share a Debian release, so the binary finds the glibc it was linked against.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/underpass

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/underpass /usr/local/bin/underpass
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["underpass"]
CMD ["server", "--listen", "0.0.0.0:8080"]
