# Vecino. `make run` builds the router and plugins and starts a node on the
# built-in loopback-only configuration (state in ./vecino-state);
# `make test` runs every test. Everything builds with CGO_ENABLED=0, as the
# image does, so that what is tested is what ships.

GO      ?= go
BIN     ?= bin
export CGO_ENABLED := 0

.PHONY: build run test check-config generate bench fuzz clean image image-vm

build:
	$(GO) build -trimpath -o $(BIN)/ ./router ./cmd/vecino ./plugins/...

run: build
	./$(BIN)/router

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 40m ./...

check-config: build
	./$(BIN)/router -check-config config/vecino.toml

# Refresh pluginapi/v1's generated code (needs protoc, protoc-gen-go,
# protoc-gen-go-grpc; see pluginapi/v1/gen.go).
generate:
	$(GO) generate ./pluginapi/...

bench: build
	bash bench/run.sh

# Every fuzzer for FUZZTIME each: go test fuzzes one target at a time.
FUZZTIME ?= 60s
FUZZ := ./config:FuzzParse ./internal/damaged:FuzzSalvage ./plugins/chat/wire:FuzzParseRoom ./plugins/chat/wire:FuzzParseMail ./plugins/chat/wire:FuzzParseInvite ./plugins/chat:FuzzCatchUpAnswer \
	./plugins/torrent:FuzzParseMetainfo ./plugins/torrent:FuzzParsePeer ./plugins/torrent:FuzzParseLPD ./plugins/torrent:FuzzParseRPC ./plugins/torrent:FuzzParseFeed ./plugins/torrent:FuzzReadBlocklist \
	./plugins/store:FuzzParseTar ./plugins/store:FuzzParseBitswap ./plugins/store:FuzzReadRecord ./plugins/store:FuzzParseRange \
	./plugins/store:FuzzHeardAnnouncements
fuzz:
	set -e; for f in $(FUZZ); do \
		$(GO) test -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) "$${f%%:*}"; \
	done

# The gokrazy SD-card image for the Raspberry Pi 3/4/5, from the gok instance
# in gokrazy/vecino (needs squashfs-tools, dosfstools, mtools, fdisk,
# e2fsprogs). The gokrazy password is made once in
# gokrazy/vecino/http-password.txt, which git ignores.
image:
	$(GO) run ./gokrazy/imagebuild -target rpi -o vecino.img

# The same recipe for a QEMU q35 virtual machine (kernel.amd64).
image-vm:
	$(GO) run ./gokrazy/imagebuild -target vm-amd64 -o vecino-vm.img

clean:
	rm -rf $(BIN) vecino.img vecino-vm.img
