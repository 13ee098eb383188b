module github.com/chat-backend/tests/e2e

go 1.24
