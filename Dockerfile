# Multi-stage: a static binary on distroless, running as non-root.
#   docker build --build-arg VERSION=$(git describe --tags --always) -t kbroker .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/kbroker ./cmd/kbroker \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kbroker /usr/local/bin/kbroker
# The data volume belongs to the image's non-root user (65532).
COPY --from=build --chown=65532:65532 /out/data /var/lib/kbroker
USER 65532:65532
# Configured the way the apache/kafka image is: KAFKA_* variables (a
# docker-compose file or Testcontainers setup written for that image can
# override any of these). No flags in ENTRYPOINT: flags would win over the
# environment. `kbroker healthcheck` reads the same KAFKA_HTTP_LISTENER.
ENV KAFKA_LISTENERS=PLAINTEXT://0.0.0.0:9092 \
    KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:9092 \
    KAFKA_LOG_DIRS=/var/lib/kbroker \
    KAFKA_HTTP_LISTENER=0.0.0.0:9644
VOLUME /var/lib/kbroker
EXPOSE 9092 9644
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD ["/usr/local/bin/kbroker", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/kbroker"]
