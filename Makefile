# Common tasks. `make help` lists them. Everything is plain npm/docker underneath.

IMAGE       ?= togather
VERSION     ?= $(shell node -p "require('./package.json').version" 2>/dev/null || echo dev)
GIT_COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_DATE  ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
COMPOSE_DIR := deploy/docker
COMPOSE     ?= docker compose
COMPOSE_BG  := $(COMPOSE) --project-directory $(COMPOSE_DIR) -f $(COMPOSE_DIR)/docker-compose.yml -f $(COMPOSE_DIR)/docker-compose.blue-green.yml
ENV_FILE    ?= $(COMPOSE_DIR)/.env
RUN_ARGS    ?= serve
# `make deploy DEPLOY_ARGS="--verify-seconds 30"` passes flags through.
DEPLOY_ARGS ?=

.PHONY: help build test docker-build docker-run up down deploy

help:
	@echo "make build          compile TypeScript to dist/ (build metadata from git)"
	@echo "make test           run the test suite (builds first)"
	@echo "make docker-build   build $(IMAGE):$(VERSION) and $(IMAGE):latest with VERSION, GIT_COMMIT, BUILD_DATE"
	@echo "make docker-run     run the image once: RUN_ARGS='$(RUN_ARGS)' (e.g. RUN_ARGS=version)"
	@echo "make up             start the blue-green stack (postgres, redis, blue, green, proxy)"
	@echo "make down           stop the stack (volumes are kept)"
	@echo "make deploy         roll $(IMAGE):$(VERSION) out to the idle slot with togather deploy"

build:
	npm run build

test:
	npm test

docker-build:
	docker build \
		--build-arg VERSION=$(VERSION) \
		--build-arg GIT_COMMIT=$(GIT_COMMIT) \
		--build-arg BUILD_DATE=$(BUILD_DATE) \
		-t $(IMAGE):$(VERSION) -t $(IMAGE):latest .

docker-run:
	docker run --rm -it --env-file $(ENV_FILE) -p 8080:8080 $(IMAGE):$(VERSION) $(RUN_ARGS)

up:
	$(COMPOSE_BG) --env-file $(ENV_FILE) up -d

down:
	$(COMPOSE_BG) --env-file $(ENV_FILE) down

deploy: build
	node dist/cli/togather.js deploy --runner compose --env $(ENV_FILE) \
		--image $(IMAGE):$(VERSION) --version $(VERSION) $(DEPLOY_ARGS)
