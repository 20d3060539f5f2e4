// Package dlq keeps what could not be delivered: the Queue interface, Entry, inspection and redrive.
//
// Drivers live in sub-packages (filedlq, kafkadlq) and pass the conformance suite in dlqtest.
package dlq
