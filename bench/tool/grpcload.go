package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rawCodec sends a request that is already serialized and does not decode
// the answer, only counts its bytes: the load tool's own cost stays small,
// as pgbench's and wrk's do (neither decodes rows or JSON either). ghz
// decodes every answer with dynamic messages, which for a page of 50
// messages cost it more CPU than the service spent making the page.
type rawCodec struct{}

// rawAnswer is what an answer decodes to: its size.
type rawAnswer struct{ bytes int }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot send %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	a, ok := v.(*rawAnswer)
	if !ok {
		return fmt.Errorf("rawCodec: cannot decode into %T", v)
	}
	a.bytes = data.Len()
	return nil
}

// Name is "proto": the content type the servers expect.
func (rawCodec) Name() string { return "proto" }

var _ encoding.CodecV2 = rawCodec{}

// grpcload runs one unary method in a closed loop: -concurrency calls in
// flight over -connections HTTP/2 connections, for -warmup (not counted)
// and then -duration, every call with the same serialized request (made
// with `protoc --encode`). It records in the results file, under -prefix,
// what ghzsum records for a ghz run: ok, errors, rate (OK answers a
// second), p50_ms and p99_ms of the OK calls, error_detail. An OK answer
// of fewer than -min-bytes bytes counts as an error (an empty page where a
// full one was asked for).
func cmdGrpcLoad(args []string) error {
	fs := flag.NewFlagSet("grpcload", flag.ExitOnError)
	addr := fs.String("addr", "", "host:port of the gRPC server")
	method := fs.String("method", "", "full method, e.g. /chat.v1.MessageService/ListMessages")
	requestFile := fs.String("request", "", "the serialized request (protoc --encode)")
	tokenFile := fs.String("token-file", "", "file with the bearer token sent as authorization")
	concurrency := fs.Int("concurrency", 16, "calls in flight")
	connections := fs.Int("connections", 1, "HTTP/2 connections, the calls spread over them")
	duration := fs.Duration("duration", 10*time.Second, "measured time")
	warmup := fs.Duration("warmup", 2*time.Second, "time before the measurement, not counted")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of each call")
	minBytes := fs.Int("min-bytes", 1, "smallest OK answer that counts as OK")
	resultsFile := fs.String("results", "", "results file")
	prefix := fs.String("prefix", "", "key prefix")
	fs.Parse(args)
	if *addr == "" || *method == "" || *requestFile == "" || *concurrency < 1 || *connections < 1 {
		return errors.New("grpcload: -addr, -method and -request are required; -concurrency and -connections at least 1")
	}
	request, err := os.ReadFile(*requestFile)
	if err != nil {
		return err
	}
	md := metadata.MD{}
	if *tokenFile != "" {
		token, err := os.ReadFile(*tokenFile)
		if err != nil {
			return err
		}
		md.Set("authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	conns := make([]*grpc.ClientConn, *connections)
	for i := range conns {
		conns[i], err = grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			return err
		}
		defer conns[i].Close()
	}

	type worker struct {
		latencies []time.Duration
		errors    map[string]int
	}
	workers := make([]worker, *concurrency)
	start := time.Now()
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*duration)
	var wg sync.WaitGroup
	for w := range workers {
		workers[w].errors = map[string]int{}
		wg.Add(1)
		go func(w *worker, conn *grpc.ClientConn) {
			defer wg.Done()
			base := metadata.NewOutgoingContext(context.Background(), md)
			req := request
			for {
				began := time.Now()
				if !began.Before(end) {
					return
				}
				ctx, cancel := context.WithTimeout(base, *timeout)
				var answer rawAnswer
				err := conn.Invoke(ctx, *method, &req, &answer)
				cancel()
				if began.Before(measureFrom) {
					continue
				}
				switch {
				case err != nil:
					w.errors[status.Code(err).String()+": "+status.Convert(err).Message()]++
				case answer.bytes < *minBytes:
					w.errors[fmt.Sprintf("OK but %d bytes (fewer than %d)", answer.bytes, *minBytes)]++
				default:
					w.latencies = append(w.latencies, time.Since(began))
				}
			}
		}(&workers[w], conns[w%len(conns)])
	}
	wg.Wait()
	// Calls that began before the end and finished after it count, over
	// the time until the last of them finished.
	elapsed := time.Since(measureFrom)

	var lat []time.Duration
	errs := map[string]int{}
	failed := 0
	for _, w := range workers {
		lat = append(lat, w.latencies...)
		for msg, n := range w.errors {
			errs[msg] += n
			failed += n
		}
	}
	sortDurations(lat)
	kv := map[string]string{
		"ok":     strconv.Itoa(len(lat)),
		"errors": strconv.Itoa(failed),
		"rate":   f2(float64(len(lat)) / elapsed.Seconds()),
		"p50_ms": ms(percentile(lat, 50)),
		"p99_ms": ms(percentile(lat, 99)),
	}
	if failed > 0 {
		var details []string
		for msg, n := range errs {
			details = append(details, fmt.Sprintf("%q x%d", msg, n))
		}
		sort.Strings(details)
		kv["error_detail"] = strings.Join(details, "; ")
	}
	if len(lat) == 0 {
		return fmt.Errorf("grpcload: no call answered OK (%s)", kv["error_detail"])
	}
	return record(*resultsFile, *prefix, kv)
}
