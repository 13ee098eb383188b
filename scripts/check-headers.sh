#!/usr/bin/env bash
# The layering that docs/architecture.md promises, checked by compiling each
# header alone and reading what it includes (ctest runs this):
#   - domain headers (the rules) reach neither gRPC nor libpqxx;
#   - handler headers (gRPC edge) reach no libpqxx.
# Usage: check-headers.sh CXX SOURCE_DIR PROTO_GEN_DIR
set -uo pipefail
cxx=$1 src=$2 gen=$3
cd "$src" || exit 2

domain=(
  common/clock.h common/conversation_record.h common/email.h
  common/errors.h common/external_jwt.h common/idempotency.h common/ids.h
  common/jwt.h common/metadata.h
  common/page_token.h common/status_macros.h common/thread_pool.h
  common/token_cache.h common/utf8.h
  services/auth/accounts.h services/auth/password.h services/auth/validation.h
  services/conversation/conversations.h
  services/message/chat.h services/message/curl_multi_loop.h
  services/message/echo_provider.h
  services/message/message_values.h services/message/messages.h
  services/message/openai_provider.h
  services/message/provider.h services/message/search.h
  services/message/shares.h
  services/message/transfers.h
)
handlers=(
  common/caller.h common/grpc_status.h common/request_context.h
  common/server.h
  services/auth/auth_handler.h services/conversation/conversation_handler.h
  services/message/chat_event_stream.h services/message/message_handler.h
  services/message/share_handler.h
  services/message/message_proto.h services/message/transfer_handler.h
  services/message/search_handler.h
)

failed=0
# check HEADER FORBIDDEN_REGEX: the include trace (-H) must not match.
check() {
  local header=$1 forbidden=$2 trace
  if ! trace=$("$cxx" -std=c++20 -fsyntax-only -H -x c++ -I "$src" -I "$gen" \
    "$header" 2>&1 >/dev/null); then
    echo "FAIL $header: does not compile on its own"
    echo "$trace" | grep -v '^\.' | head -5
    failed=1
    return
  fi
  local hits
  hits=$(echo "$trace" | grep -E '^\.+ ' | grep -E "$forbidden" | head -3)
  if [[ -n "$hits" ]]; then
    echo "FAIL $header reaches a header it must not:"
    echo "$hits"
    failed=1
  else
    echo "ok   $header"
  fi
}

for header in "${domain[@]}"; do
  check "$header" '/pqxx/|/grpcpp/|/grpc/|\.grpc\.pb\.h'
done
for header in "${handlers[@]}"; do
  check "$header" '/pqxx/'
done
exit "$failed"
