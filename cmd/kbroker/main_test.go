package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseProperties(t *testing.T) {
	in := `# Kafka's server.properties style
! also a comment
listeners=PLAINTEXT://127.0.0.1:19092
num.partitions : 6
log.dirs /var/lib/kbroker
advertised.listeners=PLAINTEXT://a.example:9092,\
    PLAINTEXT2://b.example:9093
key\ with\ space=tab\there
unicode=caf\u00e9
empty=
`
	got, err := parseProperties(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"listeners":            "PLAINTEXT://127.0.0.1:19092",
		"num.partitions":       "6",
		"log.dirs":             "/var/lib/kbroker",
		"advertised.listeners": "PLAINTEXT://a.example:9092,PLAINTEXT2://b.example:9093",
		"key with space":       "tab\there",
		"unicode":              "café",
		"empty":                "",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d keys: %q", len(got), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, err := parseProperties(strings.NewReader(`bad=\u12`)); err == nil {
		t.Error("short \\u escape accepted")
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--ephemeral", "--data-dir", "x"},
		{"--override", "novalue"},
		{"stray"},
		{"--log-level", "loud"},
	} {
		if code := run(args, nil, io.Discard, io.Discard); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if code := run([]string{"--ephemeral", "--override", "num.partitions=zero"}, nil, io.Discard, io.Discard); code != 1 {
		t.Errorf("invalid value: exit %d, want 1", code)
	}
}

func FuzzParseProperties(f *testing.F) {
	f.Add("a=b\nc : d\\\n  e\n#x\n")
	f.Add(`k\u00=v`)
	f.Fuzz(func(t *testing.T, s string) {
		parseProperties(strings.NewReader(s))
	})
}
