# The one test command (README): installs what the tests need, then checks and tests everything.
GO ?= go
STATICCHECK_VERSION := v0.8.2
GOBIN := $(shell $(GO) env GOPATH)/bin

.PHONY: test deps check run bench fuzz

test: deps check
	$(GO) test -race -count=1 -timeout 30m ./...

# deps installs Chromium (for the browser tests), nginx (forward-auth) and staticcheck when missing. PostgreSQL's
# server binaries come with the machine (Debian's postgresql package); the tests start it.
deps:
	@scripts/install-test-deps.sh
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...

run:
	$(GO) run ./cmd/latchkey serve

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# fuzz runs every fuzz target for FUZZTIME each (make fuzz FUZZTIME=10m by hand).
FUZZTIME ?= 30s
fuzz:
	scripts/fuzz.sh $(FUZZTIME)
