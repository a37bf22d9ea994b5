// Package broker is kbroker's Kafka front end (Kafka's SocketServer,
// KafkaApis and ReplicaManager): listeners, connections, dispatch by API key
// to one handler file per key (00_produce.go, 01_fetch.go, ...), and the
// partition state that Metadata reports.
//
// # Threading model
//
// Each connection has two goroutines, as in Kafka's Processor and kfake's
// clientConn: readLoop reads a frame, handles the request, and queues the
// response; writeLoop writes queued responses in order. Requests on one
// connection are handled one at a time (Kafka mutes a channel while a request
// is in flight), so responses leave in request order without sequencing, and
// a long-poll Fetch parks only its own connection. Different connections run
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
