# Builds every image of chat-backend:
#
#   docker buildx bake -f deploy/docker/docker-bake.hcl               # 0.1.0
#   TAG=0.2.0 REGISTRY=registry.example.com/chat docker buildx bake \
#     -f deploy/docker/docker-bake.hcl --push
#
# Paths are relative to the directory bake is run from: the repository root.

variable "REGISTRY" {
  default = "ghcr.io/chat-backend"
}

variable "TAG" {
  default = "0.1.0"
}

group "default" {
  targets = ["auth", "conversation", "message", "migrate", "gateway"]
}

target "_common" {
  context    = "."
  dockerfile = "deploy/docker/Dockerfile"
}

target "auth" {
  inherits = ["_common"]
  target   = "auth"
  tags     = ["${REGISTRY}/chat-auth:${TAG}"]
}

target "conversation" {
  inherits = ["_common"]
  target   = "conversation"
  tags     = ["${REGISTRY}/chat-conversation:${TAG}"]
}

target "message" {
  inherits = ["_common"]
  target   = "message"
  tags     = ["${REGISTRY}/chat-message:${TAG}"]
}

target "migrate" {
  inherits = ["_common"]
  target   = "migrate"
  tags     = ["${REGISTRY}/chat-migrate:${TAG}"]
}

target "gateway" {
  inherits = ["_common"]
  target   = "gateway"
  tags     = ["${REGISTRY}/chat-gateway:${TAG}"]
}
