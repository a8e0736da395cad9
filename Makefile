# Thin wrapper over CMake for the README's two commands.
#   make demo   install what is missing, build, run the QKD demo (local backend)
#   make test   install what is missing, build, run every test (ctest, all labels)
#   make build  just configure and build
BUILD ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo

.PHONY: all deps configure build demo test clean

all: build

deps:
	bash .ci/install-deps

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

# QKD across a three-node chain (40 seconds); `make demo SERVE=1` keeps
# the key managers serving after the report until Ctrl-C.
demo: build
	$(BUILD)/emulator/qnet/qnet run emulator/topologies/qkd-demo.xml $(if $(SERVE),--serve-keys)

test: build
	cd $(BUILD) && ctest --output-on-failure

clean:
	rm -rf $(BUILD)
