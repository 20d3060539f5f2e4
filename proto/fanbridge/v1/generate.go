// Package fanbridgev1 holds the Go code generated from sink.proto: the EventSink gRPC service and
// its messages, the wire contract between fanbridge's gRPC sink (package sink/grpcsink) and a
// consumer service.
//
// Most users never touch this package directly: grpcsink.New sends to it and grpcsink.NewServer
// implements it. Consumers written in other languages generate their own code from sink.proto.
//
// The code was generated with protoc 3.21.12 (libprotoc, Debian package protobuf-compiler),
// protoc-gen-go v1.36.12 (the protobuf version in go.mod) and protoc-gen-go-grpc 1.6.2, by the
// go:generate line below run in this directory. The generated files are committed; builds never
// run the generator. To regenerate after changing sink.proto:
//
//	apt-get install protobuf-compiler
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
//	go generate ./proto/...
package fanbridgev1

//go:generate protoc -I ../.. --go_out=../.. --go_opt=paths=source_relative --go-grpc_out=../.. --go-grpc_opt=paths=source_relative fanbridge/v1/sink.proto
