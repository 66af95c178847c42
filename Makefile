# LeadLens: two commands on a fresh Debian machine with only Swift installed.
#   make demo   build, generate a demo dataset, ingest it, train and activate a model, score every lead,
#               then serve it (Ctrl-C stops) with a fresh API key and example requests
#   make test   run the test suite
# Both install the system packages they need first (apt-get; root or sudo).

SWIFT        ?= swift
DB           ?= data/leadlens.sqlite
DEMO_LEADS   ?= 20000
PORT         ?= 8080
BIN          := .build/release/leadlens
# libsqlite3-dev: GRDB links the system SQLite. libblas-dev: cblas.h and libblas.so.
# libopenblas0: a faster libblas.so.3 via Debian alternatives. zlib1g-dev: gzip inputs.
# sqlite3: the bench's peer. gzip: tests make compressed inputs with it.
# wrk: the API benchmark's load generator.
APT_PACKAGES := libsqlite3-dev libblas-dev libopenblas0 zlib1g-dev sqlite3 wrk gzip

.PHONY: all deps build test demo bench clean

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build -c release --product leadlens

test: deps
	$(SWIFT) test

demo: build
	$(BIN) generate --leads $(DEMO_LEADS) --seed 42 --as-of today --out data/demo
	$(BIN) ingest data/demo/leads.csv data/demo/events.ndjson --db $(DB)
	@# Exit 1 means "trained, but not activated": its holdout AUC fell more than 0.005 below
	@# the active model's on the same leads. The demo then goes on with the active model.
	-$(BIN) train --db $(DB) --name demo --activate
	$(BIN) score --all --db $(DB)
	$(BIN) report --db $(DB) --period 30d
	@KEY=$$($(BIN) keys create --db $(DB) --name demo-$$(date +%Y%m%d-%H%M%S) --scopes read,write,admin --rate 10000/h 2>/dev/null) && \
	echo && echo "Demo store: $(DB). API key (shown once): $$KEY" && echo "Try, in another terminal:" && \
	echo "  curl -H 'Authorization: Bearer $$KEY' 'http://127.0.0.1:$(PORT)/api/v1/leads?min_score=80&max_score=100&per_page=5'" && \
	echo "  curl -H 'Authorization: Bearer $$KEY' 'http://127.0.0.1:$(PORT)/api/v1/leads/stats'" && \
	echo "  curl -H 'Authorization: Bearer $$KEY' -d '{\"email\": \"ada@example.com\", \"first_name\": \"Ada\"}' http://127.0.0.1:$(PORT)/api/v1/intake" && \
	echo && exec $(BIN) serve --db $(DB) --port $(PORT)

bench: build
	python3 bench/run.py

clean:
	rm -rf .build data/demo bench/out
