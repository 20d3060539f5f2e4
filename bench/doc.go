// Package bench holds the end-to-end benchmark of fanbridge against the two ways the same job is
// usually done in Go: a tutorial-style net/http handler and a Watermill router publishing to Kafka.
//
// Everything lives in the package's tests; this file exists only to document it. Each pipeline is
// a real HTTP server on 127.0.0.1 that checks the same HMAC-SHA256 signature, decodes the same
// Amazon EventBridge envelope, matches it against the same 1,000 event patterns and produces it to
// Kafka (a kfake broker), answering the sender only once the broker has acknowledged the record.
// The load generator and the broker run in a child process, so that the server's CPU time can be
// read from the operating system without subtracting anything, and when benchmarking the two
// processes are pinned to separate halves of the CPUs (-pin=false shares them instead).
//
// The tests build on Unix systems only (they read CPU time with getrusage).
//
// Run it as described in README.md:
//
//	go test ./bench                                      # smoke test: every pipeline delivers
//	go test -run '^$' -bench EndToEnd -benchtime 20000x -count 5 ./bench
package bench
