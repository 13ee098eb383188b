package server

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	protov2 "google.golang.org/protobuf/proto"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/jsonout"
)

// The listings' answers are pages of up to 200 messages or conversations
// that the gateway only writes out as JSON. Decoding one into Go values
// first allocated every string of it (650 allocations for a page of 50
// messages) and cost more than writing it; so their answers are taken
// undecoded, and package jsonout writes them straight from the bytes
// (jsonout.SetWire). Every other call decodes its answer as usual.

// undecodedCodec encodes requests as gRPC's proto codec does, and keeps
// answers undecoded.
type undecodedCodec struct{ encoding.CodecV2 }

var undecodedAnswer = grpc.ForceCodecV2(undecodedCodec{encoding.GetCodecV2(proto.Name)})

// wireReply receives an answer's bytes.
type wireReply struct{ wire *jsonout.Buffer }

func (undecodedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*wireReply)
	if !ok {
		return fmt.Errorf("undecoded answer: %T is not a wireReply", v)
	}
	// data's buffers are gRPC's to reuse once this returns: the answer is
	// copied into a pooled buffer.
	if r.wire == nil {
		r.wire = jsonout.GetBuffer()
	}
	n := data.Len()
	r.wire.B = slices.Grow(r.wire.B[:0], n)[:n]
	data.CopyTo(r.wire.B)
	return nil
}

// invokeUndecoded calls method with in and returns its answer undecoded.
// The answer's bytes are the request's (reqState.keep): the answer is not
// to be used once the request is done.
func invokeUndecoded[Out any, POut interface {
	*Out
	protov2.Message
}](ctx context.Context, conn grpc.ClientConnInterface, method string, in any, opts []grpc.CallOption) (*Out, error) {
	var reply wireReply
	err := conn.Invoke(ctx, method, in, &reply, append(opts, grpc.StaticMethod(), undecodedAnswer)...)
	if reply.wire != nil {
		stateFrom(ctx).keep(reply.wire)
	}
	if err != nil {
		return nil, err
	}
	out := POut(new(Out))
	if reply.wire != nil {
		jsonout.SetWire(out, reply.wire.B)
	}
	return out, nil
}

// undecodedMessages is the message service's client for the generated
// handlers, with ListMessages answered undecoded.
type undecodedMessages struct {
	chatv1.MessageServiceClient
	conn grpc.ClientConnInterface
}

func (c undecodedMessages) ListMessages(ctx context.Context, in *chatv1.ListMessagesRequest, opts ...grpc.CallOption) (*chatv1.ListMessagesResponse, error) {
	return invokeUndecoded[chatv1.ListMessagesResponse](ctx, c.conn, chatv1.MessageService_ListMessages_FullMethodName, in, opts)
}

// undecodedConversations: the same for ListConversations.
type undecodedConversations struct {
	chatv1.ConversationServiceClient
	conn grpc.ClientConnInterface
}

func (c undecodedConversations) ListConversations(ctx context.Context, in *chatv1.ListConversationsRequest, opts ...grpc.CallOption) (*chatv1.ListConversationsResponse, error) {
	return invokeUndecoded[chatv1.ListConversationsResponse](ctx, c.conn, chatv1.ConversationService_ListConversations_FullMethodName, in, opts)
}

// undecodedSearch: the same for Search, whose pages are messages too.
type undecodedSearch struct {
	chatv1.SearchServiceClient
	conn grpc.ClientConnInterface
}

func (c undecodedSearch) Search(ctx context.Context, in *chatv1.SearchRequest, opts ...grpc.CallOption) (*chatv1.SearchResponse, error) {
	return invokeUndecoded[chatv1.SearchResponse](ctx, c.conn, chatv1.SearchService_Search_FullMethodName, in, opts)
}
