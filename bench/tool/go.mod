module github.com/chat-backend/bench/tool

go 1.24
