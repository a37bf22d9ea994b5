// Package broker is kbroker's Kafka front end (Kafka's SocketServer,
// KafkaApis and ReplicaManager): listeners, connections, dispatch by API key
// to one handler file per key (00_produce.go, 01_fetch.go, ...), and the
// partition state that Metadata reports.
//
// # Threading model
//
// Each connection has one goroutine that reads a request, handles it and
// writes its response before reading the next: Kafka mutes a channel while a
// request is in flight, so requests on one connection never overlap anyway,
// and without a separate writer no goroutine hand-off sits on the latency
// path. Responses leave in request order without sequencing, and a
// long-poll Fetch parks only its own connection. Different connections run
// in parallel; shared state is guarded where it lives (storage.Log has its
// own lock; fetch sessions have theirs).
//
// Every goroutine is started through Server.goroutine and Close waits for
// all of them, so an embedded broker leaks nothing.
//
// # Lock order
//
// Server.mu → fetchSessionCache.mu. Storage locks are never held across
// calls back into this package.
package broker
