# The README's two commands are `make demo` and `make test`; the rest are helpers.
SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: demo test setup build build-asan fuzz bench clean

demo: setup build
	scripts/demo

test: setup
	scripts/test

setup:
	scripts/setup

build:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	ninja -C $(BUILD) -j $(JOBS)

build-asan:
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTASKMESH_SANITIZE=ON >/dev/null
	ninja -C build-asan -j $(JOBS)

fuzz:
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTASKMESH_FUZZ=ON >/dev/null
	ninja -C build-fuzz -j $(JOBS)

bench: setup build
	bench/run_all

clean:
	rm -rf build build-asan build-fuzz
