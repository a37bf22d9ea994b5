// Package protocol is kbroker's edge to the Kafka wire: it reads request
// frames, parses request headers, knows which API versions the broker
// supports, validates produced RecordBatches, maps internal errors to Kafka
// error codes, and assembles responses whose record bytes are spliced in from
// segment files (zero copy).
//
// Message bodies are never hand-encoded: requests are decoded and responses
// encoded by github.com/twmb/franz-go/pkg/kmsg. This package only owns what
// kmsg does not: the frame (4-byte big-endian size), the request header, and
// the response header quirk of ApiVersions.
//
// Frame layout (Kafka's RequestChannel / NetworkReceive):
//
//	| size int32 | api_key int16 | api_version int16 | correlation_id int32 |
//	| client_id nullable string | [tagged fields, flexible versions] | body |
package protocol
