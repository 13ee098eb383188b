package server_test

// A fake of the network peer: one in-test gRPC server on 127.0.0.1:0 that
// serves the three chat.v1 services and grpc.health.v1, records what it
// receives, and answers canned responses or a configured error. The gateway
// under test reaches it over a real gRPC connection.

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
)

type backend struct {
	addr   string
	health *health.Server

	mu       sync.Mutex
	calls    []call
	fail     error                                                                   // answered by every RPC when set
	streamFn func(proto.Message, grpc.ServerStreamingServer[chatv1.ChatEvent]) error // Chat's, Regenerate's and StreamReply's behaviour
	block    bool                                                                    // unary RPCs wait for their context to end
	delay    time.Duration                                                           // unary RPCs answer after this long
	page     *chatv1.ListMessagesResponse                                            // ListMessages' answer when set
	pageFor  func(*chatv1.ListMessagesRequest) *chatv1.ListMessagesResponse          // or this one's, for its request

	broken chan struct{} // closed by breakCalls: the Multiplex calls open end
	// Multiplex calls opened, and ended by the client's half-close.
	muxOpened, muxHalfClosed atomic.Int32

	exportFn    func(grpc.ServerStreamingServer[chatv1.ExportChunk]) error // Export's behaviour
	importCheck func(*chatv1.ImportItem) error                             // Import fails with its error
	imports     chan importCall                                            // every Import call, once it ended
}

// importCall is what one Import call received, and how it ended.
type importCall struct {
	md        metadata.MD
	batches   []int // items in each ImportRequest
	items     []*chatv1.ImportItem
	ended     bool // a request marked end arrived
	cancelled bool // the client cancelled the call (no CloseSend)
	err       error
}

type call struct {
	method string
	req    proto.Message
	md     metadata.MD
}

func startBackend(t testing.TB, opts ...grpc.ServerOption) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String(), health: health.NewServer(), imports: make(chan importCall, 256), broken: make(chan struct{})}
	s := grpc.NewServer(opts...)
	chatv1.RegisterAuthServiceServer(s, &fakeAuth{b: b})
	chatv1.RegisterConversationServiceServer(s, &fakeConversations{b: b})
	messages := &fakeMessages{b: b}
	chatv1.RegisterMessageServiceServer(s, messages)
	chatv1.RegisterEventStreamsServer(s, &fakeEventStreams{m: messages})
	chatv1.RegisterExportServiceServer(s, &fakeExport{b: b})
	healthpb.RegisterHealthServer(s, b.health)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return b
}

func (b *backend) setFail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail = err
}

// breakCalls ends every Multiplex call open now with UNAVAILABLE, as a
// message service that goes away would; later calls are served.
func (b *backend) breakCalls() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.broken)
	b.broken = make(chan struct{})
}

func (b *backend) setBlock() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.block = true
}

func (b *backend) setDelay(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.delay = d
}

func (b *backend) setMessagePage(p *chatv1.ListMessagesResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.page = p
}

// setStream sets what Chat, Regenerate and StreamReply do after recording
// the call; req is their request.
func (b *backend) setStream(fn func(req proto.Message, s grpc.ServerStreamingServer[chatv1.ChatEvent]) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.streamFn = fn
}

// setChat sets what Chat (and Regenerate) do, for tests of Chat alone.
func (b *backend) setChat(fn func(*chatv1.ChatRequest, grpc.ServerStreamingServer[chatv1.ChatEvent]) error) {
	b.setStream(func(req proto.Message, s grpc.ServerStreamingServer[chatv1.ChatEvent]) error {
		r, _ := req.(*chatv1.ChatRequest)
		return fn(r, s)
	})
}

// record notes a call and returns the error to answer, if any.
func (b *backend) record(ctx context.Context, method string, req proto.Message) error {
	md, _ := metadata.FromIncomingContext(ctx)
	b.mu.Lock()
	b.calls = append(b.calls, call{method: method, req: proto.Clone(req), md: md})
	fail, block, delay := b.fail, b.block, b.delay
	b.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fail
}

// lastCall returns the latest call, failing the test when there is none.
func (b *backend) lastCall(t *testing.T) call {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.calls) == 0 {
		t.Fatal("the backend received no call")
	}
	return b.calls[len(b.calls)-1]
}

func (b *backend) callCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.calls)
}

// answer is the body of every unary fake: record, then fail or respond.
func answer[Resp proto.Message](b *backend, ctx context.Context, method string, req proto.Message, resp Resp) (Resp, error) {
	if err := b.record(ctx, method, req); err != nil {
		var zero Resp
		return zero, err
	}
	return resp, nil
}

var empty = &emptypb.Empty{}

type fakeAuth struct {
	chatv1.UnimplementedAuthServiceServer
	b *backend
}

func (f *fakeAuth) Register(ctx context.Context, r *chatv1.RegisterRequest) (*chatv1.RegisterResponse, error) {
	return answer(f.b, ctx, "Register", r, &chatv1.RegisterResponse{
		User:   &chatv1.User{Id: "u1", Username: r.GetUsername()},
		Tokens: &chatv1.Tokens{TokenType: "Bearer", ExpiresIn: 900},
	})
}

func (f *fakeAuth) Login(ctx context.Context, r *chatv1.LoginRequest) (*chatv1.LoginResponse, error) {
	return answer(f.b, ctx, "Login", r, &chatv1.LoginResponse{User: &chatv1.User{Id: "u1"}})
}

func (f *fakeAuth) Refresh(ctx context.Context, r *chatv1.RefreshRequest) (*chatv1.RefreshResponse, error) {
	return answer(f.b, ctx, "Refresh", r, &chatv1.RefreshResponse{Tokens: &chatv1.Tokens{}})
}

func (f *fakeAuth) Logout(ctx context.Context, r *chatv1.LogoutRequest) (*emptypb.Empty, error) {
	return answer(f.b, ctx, "Logout", r, empty)
}

func (f *fakeAuth) GetProfile(ctx context.Context, r *chatv1.GetProfileRequest) (*chatv1.GetProfileResponse, error) {
	return answer(f.b, ctx, "GetProfile", r, &chatv1.GetProfileResponse{User: &chatv1.User{Id: "u1"}})
}

func (f *fakeAuth) UpdateProfile(ctx context.Context, r *chatv1.UpdateProfileRequest) (*chatv1.UpdateProfileResponse, error) {
	return answer(f.b, ctx, "UpdateProfile", r, &chatv1.UpdateProfileResponse{User: &chatv1.User{Id: "u1"}})
}

func (f *fakeAuth) DeleteAccount(ctx context.Context, r *chatv1.DeleteAccountRequest) (*emptypb.Empty, error) {
	return answer(f.b, ctx, "DeleteAccount", r, empty)
}

func (f *fakeAuth) GetJwks(ctx context.Context, r *chatv1.GetJwksRequest) (*chatv1.GetJwksResponse, error) {
	return answer(f.b, ctx, "GetJwks", r, &chatv1.GetJwksResponse{Keys: []*chatv1.Jwk{{Kty: "RSA", Kid: "k1"}}})
}

type fakeConversations struct {
	chatv1.UnimplementedConversationServiceServer
	b *backend
}

func (f *fakeConversations) CreateConversation(ctx context.Context, r *chatv1.CreateConversationRequest) (*chatv1.Conversation, error) {
	return answer(f.b, ctx, "CreateConversation", r, &chatv1.Conversation{Id: "c1", Title: r.GetConversation().GetTitle()})
}

func (f *fakeConversations) ListConversations(ctx context.Context, r *chatv1.ListConversationsRequest) (*chatv1.ListConversationsResponse, error) {
	return answer(f.b, ctx, "ListConversations", r, &chatv1.ListConversationsResponse{})
}

func (f *fakeConversations) GetConversation(ctx context.Context, r *chatv1.GetConversationRequest) (*chatv1.Conversation, error) {
	return answer(f.b, ctx, "GetConversation", r, &chatv1.Conversation{Id: r.GetId(), Title: "t"})
}

func (f *fakeConversations) UpdateConversation(ctx context.Context, r *chatv1.UpdateConversationRequest) (*chatv1.Conversation, error) {
	return answer(f.b, ctx, "UpdateConversation", r, &chatv1.Conversation{Id: r.GetId()})
}

func (f *fakeConversations) DeleteConversation(ctx context.Context, r *chatv1.DeleteConversationRequest) (*emptypb.Empty, error) {
	return answer(f.b, ctx, "DeleteConversation", r, empty)
}

func (f *fakeConversations) DeleteAllConversations(ctx context.Context, r *chatv1.DeleteAllConversationsRequest) (*emptypb.Empty, error) {
	return answer(f.b, ctx, "DeleteAllConversations", r, empty)
}

type fakeMessages struct {
	chatv1.UnimplementedMessageServiceServer
	b *backend
}

func (f *fakeMessages) CreateMessage(ctx context.Context, r *chatv1.CreateMessageRequest) (*chatv1.Message, error) {
	return answer(f.b, ctx, "CreateMessage", r, &chatv1.Message{Id: "m1", ConversationId: r.GetConversationId()})
}

func (f *fakeMessages) ListMessages(ctx context.Context, r *chatv1.ListMessagesRequest) (*chatv1.ListMessagesResponse, error) {
	f.b.mu.Lock()
	page, pageFor := f.b.page, f.b.pageFor
	f.b.mu.Unlock()
	if pageFor != nil {
		page = pageFor(r)
	}
	if page == nil {
		page = &chatv1.ListMessagesResponse{}
	}
	return answer(f.b, ctx, "ListMessages", r, page)
}

func (f *fakeMessages) GetMessage(ctx context.Context, r *chatv1.GetMessageRequest) (*chatv1.Message, error) {
	return answer(f.b, ctx, "GetMessage", r, &chatv1.Message{Id: r.GetId()})
}

func (f *fakeMessages) UpdateMessage(ctx context.Context, r *chatv1.UpdateMessageRequest) (*chatv1.Message, error) {
	return answer(f.b, ctx, "UpdateMessage", r, &chatv1.Message{Id: r.GetId()})
}

func (f *fakeMessages) DeleteMessage(ctx context.Context, r *chatv1.DeleteMessageRequest) (*emptypb.Empty, error) {
	return answer(f.b, ctx, "DeleteMessage", r, empty)
}

func (f *fakeMessages) ClearMessages(ctx context.Context, r *chatv1.ClearMessagesRequest) (*emptypb.Empty, error) {
	return answer(f.b, ctx, "ClearMessages", r, empty)
}

func (f *fakeMessages) Chat(r *chatv1.ChatRequest, stream grpc.ServerStreamingServer[chatv1.ChatEvent]) error {
	return f.stream("Chat", r, stream)
}

func (f *fakeMessages) Regenerate(r *chatv1.RegenerateRequest, stream grpc.ServerStreamingServer[chatv1.ChatEvent]) error {
	return f.stream("Regenerate", r, stream)
}

func (f *fakeMessages) StreamReply(r *chatv1.StreamReplyRequest, stream grpc.ServerStreamingServer[chatv1.ChatEvent]) error {
	return f.stream("StreamReply", r, stream)
}

func (f *fakeMessages) CancelReply(ctx context.Context, r *chatv1.CancelReplyRequest) (*chatv1.Message, error) {
	return answer(f.b, ctx, "CancelReply", r, &chatv1.Message{
		Id: r.GetId(), ConversationId: r.GetConversationId(), Role: "assistant", Content: "Hel",
		Status: "incomplete", Model: "echo", ParentId: proto.String("m1"), SiblingCount: 1,
	})
}

// stream records a streaming call, then fails, runs the configured
// behaviour, or sends one delta.
func (f *fakeMessages) stream(method string, r proto.Message, stream grpc.ServerStreamingServer[chatv1.ChatEvent]) error {
	if err := f.b.record(stream.Context(), method, r); err != nil {
		return err
	}
	f.b.mu.Lock()
	fn := f.b.streamFn
	f.b.mu.Unlock()
	if fn == nil {
		return stream.Send(&chatv1.ChatEvent{Event: &chatv1.ChatEvent_Delta{Delta: &chatv1.ChatDelta{Text: "hi"}}})
	}
	return fn(r, stream)
}

// fakeEventStreams serves Multiplex as the message service does: each open
// request runs the streaming method it names (fakeMessages.stream) with the
// stream's metadata, its events and its end go back numbered, and a close
// request, or the end of the call, cancels the stream's context.
type fakeEventStreams struct {
	chatv1.UnimplementedEventStreamsServer
	m *fakeMessages
}

func (f *fakeEventStreams) Multiplex(call grpc.BidiStreamingServer[chatv1.MultiplexRequest, chatv1.MultiplexResponse]) error {
	var sendMu sync.Mutex
	returned := false // grpc-go allows no Send once the handler returned
	defer func() {
		sendMu.Lock()
		returned = true
		sendMu.Unlock()
	}()
	send := func(ev *chatv1.StreamEvent) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		if returned {
			return status.Error(codes.Canceled, "the call is over")
		}
		return call.Send(&chatv1.MultiplexResponse{Events: []*chatv1.StreamEvent{ev}})
	}
	var mu sync.Mutex
	cancels := map[uint64]context.CancelFunc{}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, cancel := range cancels {
			cancel()
		}
	}()
	f.m.b.muxOpened.Add(1)
	f.m.b.mu.Lock()
	broken := f.m.b.broken
	f.m.b.mu.Unlock()
	received := make(chan struct{})
	go func() {
		defer close(received)
		f.receive(call, send, &mu, cancels)
	}()
	select {
	case <-received:
		return nil
	case <-broken:
		return status.Error(codes.Unavailable, "the message service went away")
	}
}

// receive serves the requests of a Multiplex call until it ends.
func (f *fakeEventStreams) receive(call grpc.BidiStreamingServer[chatv1.MultiplexRequest, chatv1.MultiplexResponse],
	send func(*chatv1.StreamEvent) error, mu *sync.Mutex, cancels map[uint64]context.CancelFunc) {
	for {
		req, err := call.Recv()
		if errors.Is(err, io.EOF) {
			f.m.b.muxHalfClosed.Add(1)
		}
		if err != nil {
			return
		}
		id := req.GetStream()
		if req.GetClose() {
			mu.Lock()
			if cancel, ok := cancels[id]; ok {
				cancel()
			}
			mu.Unlock()
			continue
		}
		open := req.GetOpen()
		md := metadata.MD{}
		if open.GetAuthorization() != "" {
			md.Set("authorization", open.GetAuthorization())
		}
		if open.GetRequestId() != "" {
			md.Set("x-request-id", open.GetRequestId())
		}
		ctx, cancel := context.WithCancel(metadata.NewIncomingContext(call.Context(), md))
		mu.Lock()
		cancels[id] = cancel
		mu.Unlock()
		method, r := "Chat", proto.Message(open.GetChat())
		if open.GetRegenerate() != nil {
			method, r = "Regenerate", open.GetRegenerate()
		} else if open.GetStreamReply() != nil {
			method, r = "StreamReply", open.GetStreamReply()
		}
		go func() {
			defer func() {
				mu.Lock()
				delete(cancels, id)
				mu.Unlock()
				cancel()
			}()
			err := f.m.stream(method, r, &carriedStream{ctx: ctx, id: id, send: send})
			end := &chatv1.StreamEnd{}
			if err != nil {
				st := status.Convert(err)
				end.Code, end.Message = int32(st.Code()), st.Message()
				if len(st.Details()) > 0 {
					end.Details, _ = proto.Marshal(st.Proto())
				}
			}
			_ = send(&chatv1.StreamEvent{Stream: id, Item: &chatv1.StreamEvent_End{End: end}})
		}()
	}
}

// carriedStream is one stream of a Multiplex call, as the server side of
// its own call would be.
type carriedStream struct {
	grpc.ServerStream
	ctx  context.Context
	id   uint64
	send func(*chatv1.StreamEvent) error
}

func (s *carriedStream) Context() context.Context { return s.ctx }

func (s *carriedStream) Send(ev *chatv1.ChatEvent) error {
	if err := s.ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	return s.send(&chatv1.StreamEvent{Stream: s.id, Item: &chatv1.StreamEvent_Event{Event: ev}})
}

func (f *fakeMessages) ForkConversation(ctx context.Context, r *chatv1.ForkConversationRequest) (*chatv1.Conversation, error) {
	return answer(f.b, ctx, "ForkConversation", r, &chatv1.Conversation{Id: "c2", Title: r.GetTitle(), ActiveLeafId: "m3"})
}

// fakeExport serves ExportService: Export runs exportFn (none: no
// conversation), Import gathers every item, checks each with importCheck,
// and answers imported = the number of conversations.
type fakeExport struct {
	chatv1.UnimplementedExportServiceServer
	b *backend
}

func (b *backend) setExport(fn func(grpc.ServerStreamingServer[chatv1.ExportChunk]) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.exportFn = fn
}

func (b *backend) setImportCheck(fn func(*chatv1.ImportItem) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.importCheck = fn
}

// nextImport waits for the next Import call to end.
func (b *backend) nextImport(t *testing.T) importCall {
	t.Helper()
	select {
	case c := <-b.imports:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no Import call ended within 10 s")
		return importCall{}
	}
}

func (f *fakeExport) Export(r *chatv1.ExportRequest, stream grpc.ServerStreamingServer[chatv1.ExportChunk]) error {
	if err := f.b.record(stream.Context(), "Export", r); err != nil {
		return err
	}
	f.b.mu.Lock()
	fn := f.b.exportFn
	f.b.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn(stream)
}

func (f *fakeExport) Import(stream grpc.ClientStreamingServer[chatv1.ImportRequest, chatv1.ImportResponse]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	c := importCall{md: md}
	defer func() { f.b.imports <- c }()
	f.b.mu.Lock()
	check, fail := f.b.importCheck, f.b.fail
	f.b.mu.Unlock()
	if fail != nil {
		c.err = fail
		return fail
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if !c.ended {
				// As the service: an upload without its last request
				// is incomplete.
				c.err = status.Error(codes.InvalidArgument, "the upload ended without a request marked end")
				return c.err
			}
			break
		}
		if err != nil {
			c.cancelled, c.err = status.Code(err) == codes.Canceled, err
			return err
		}
		if c.ended {
			c.err = status.Error(codes.InvalidArgument, "a request follows the one marked end")
			return c.err
		}
		c.ended = req.GetEnd()
		c.batches = append(c.batches, len(req.GetItems()))
		for _, it := range req.GetItems() {
			c.items = append(c.items, it)
			if check != nil {
				if err := check(it); err != nil {
					c.err = err
					return err
				}
			}
		}
	}
	n := 0
	for _, it := range c.items {
		if it.GetConversation() != nil {
			n++
		}
	}
	return stream.SendAndClose(&chatv1.ImportResponse{Imported: int32(n)})
}
