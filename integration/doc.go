// Package integration holds kbroker's end-to-end tests: real Kafka clients
// (franz-go's kgo and kadm) against a real broker on 127.0.0.1, in-process
// through the broker package and as a separate process for crash tests. The
// tests are part of the normal `go test ./...` run.
package integration
