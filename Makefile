# Vecino. `make run` builds the router and plugins and starts a node on the
# built-in loopback-only configuration (state in ./vecino-state);
# `make test` runs every test. Everything builds with CGO_ENABLED=0, as the
# image does, so that what is tested is what ships.

GO      ?= go
BIN     ?= bin
export CGO_ENABLED := 0

.PHONY: build run test check-config generate bench fuzz clean

build:
	$(GO) build -trimpath -o $(BIN)/ ./router ./plugins/...

run: build
	./$(BIN)/router

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

check-config: build
	./$(BIN)/router -check-config config/vecino.toml

# Refresh pluginapi/v1's generated code (needs protoc, protoc-gen-go,
# protoc-gen-go-grpc; see pluginapi/v1/gen.go).
generate:
	$(GO) generate ./pluginapi/...

bench: build
	bash bench/run.sh

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./config

clean:
	rm -rf $(BIN)
