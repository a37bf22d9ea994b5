# Multi-stage: a static binary on distroless, running as non-root.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/kbroker ./cmd/kbroker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kbroker /usr/local/bin/kbroker
VOLUME /var/lib/kbroker
EXPOSE 9092
ENTRYPOINT ["/usr/local/bin/kbroker", "--data-dir", "/var/lib/kbroker", "--override", "listeners=PLAINTEXT://0.0.0.0:9092", "--override", "advertised.listeners=PLAINTEXT://localhost:9092"]
