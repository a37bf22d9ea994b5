package broker

// kafkaPrincipal is who a connection acts as (Kafka's KafkaPrincipal). A
// PLAINTEXT connection, or a TLS one without a client certificate, is
// User:ANONYMOUS; SASL and TLS client authentication set their own.
type kafkaPrincipal struct {
	Type string // "User"
	Name string
}

func (p kafkaPrincipal) String() string { return p.Type + ":" + p.Name }

var anonymousPrincipal = kafkaPrincipal{Type: "User", Name: "ANONYMOUS"}
