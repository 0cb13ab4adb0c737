# Wraps CMake and the scripts. Everything lands under build/.
#   make run    build the release binary and start it locally (prints where it listens and the token)
#   make test   build both flavors and run every test
BUILD      := build
DEPS_DIR   := $(BUILD)/deps
DEPS_ENV   := $(DEPS_DIR)/prefix/deps.env
JOBS       ?= 2

.PHONY: all deps release dev fuzz fuzz-build run test bench soak clean lint

all: release

deps:
	scripts/install-deps.sh release
	scripts/deps.sh $(DEPS_DIR)

release: deps
	. ./$(DEPS_ENV) && cmake -S . -B $(BUILD)/release -DRUNRA_FLAVOR=release -DCMAKE_C_COMPILER=musl-gcc \
		-DRUNRA_DEPS_PREFIX="$$RUNRA_DEPS_PREFIX" -DRUNRA_KERNEL_HEADERS="$$RUNRA_DEPS_KERNEL_HEADERS" >/dev/null
	cmake --build $(BUILD)/release -j$(JOBS)
	@file $(BUILD)/release/runra-agent

dev:
	scripts/install-deps.sh dev
	cmake -S . -B $(BUILD)/dev -DRUNRA_FLAVOR=dev >/dev/null
	cmake --build $(BUILD)/dev -j$(JOBS)

fuzz-build:
	scripts/install-deps.sh dev test
	cmake -S . -B $(BUILD)/fuzz -DRUNRA_FLAVOR=fuzz -DCMAKE_C_COMPILER=clang >/dev/null
	cmake --build $(BUILD)/fuzz -j$(JOBS)

fuzz: fuzz-build
	scripts/fuzz.sh $(BUILD)/fuzz $${FUZZ_SECONDS:-60}

run: release
	scripts/run-local.sh $(BUILD)/release/runra-agent $(BUILD)/run

test: release dev fuzz-build
	scripts/install-deps.sh test
	scripts/test.sh $(BUILD)

# Mixed traffic for SOAK_SECONDS (default 600) against the release binary: RSS and fds must stay flat.
soak: release
	scripts/install-deps.sh test
	SOAK_SECONDS=$${SOAK_SECONDS:-600} /usr/bin/python3 tests/soak/soak.py

bench: release
	scripts/install-deps.sh bench
	bench/run.sh $(BUILD)

lint:
	scripts/lint.sh

clean:
	rm -rf $(BUILD)
