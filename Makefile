# Thin wrapper over CMake.  `make demo` and `make check` install what is
# missing (Debian packages only), configure, build and run.
#   make check SANITIZE=1   ASan + UBSan build in build-asan/
#   make bench              benchmark programs (figures, not tests)
#   make install [PREFIX=/usr/local] [DESTDIR=...]   tools, libraries, headers,
#                           pkg-config + CMake package files, man pages
#   make uninstall          removes what the last `make install` installed
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD ?= build-asan
CMAKE_FLAGS += -DMILC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
else
BUILD ?= build
endif
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
DEB_PACKAGES = build-essential cmake pkg-config flex bison libxxhash-dev libcriterion-dev libopenblas-dev groff-base \
               libprotobuf-c-dev protobuf-c-compiler fortunes gnuplot-nox
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps configure build check demo bench fuzz interop clean install uninstall tsan

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

check: build
	cd $(BUILD) && ctest --output-on-failure

demo: build
	./examples/demo.sh $(BUILD)

bench: build
	./bench/run.sh $(BUILD)

# ThreadSanitizer run of the threaded kernels, the pool and the device in
# build-tsan/ (test/runtime/tsan_run.sh: mil-run and mil-train on sizes the
# pool splits; OpenBLAS is not instrumented, see test/CMakeLists.txt).
tsan: deps
	cmake -S . -B build-tsan -DMILC_TSAN=ON
	cmake --build build-tsan -j $(JOBS) --target milc mil-run mil-train
	cd build-tsan && ctest --output-on-failure -R '^tsan$$'

# The install is relocatable (the .pc and CMake files name paths relative to
# themselves), so PREFIX needs no reconfiguration.  The list of installed files
# (DESTDIR included, so `make uninstall` needs no DESTDIR) is kept in
# INSTALL_MANIFEST for `make uninstall`.
PREFIX ?= /usr/local
INSTALL_MANIFEST ?= $(BUILD)/installed-files.txt
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"
	sed 's,^,$(DESTDIR),' $(BUILD)/install_manifest.txt > "$(INSTALL_MANIFEST)"

uninstall:
	@[ -f "$(INSTALL_MANIFEST)" ] || { echo "uninstall: no $(INSTALL_MANIFEST) (nothing installed from $(BUILD))"; exit 1; }
	@while IFS= read -r f || [ -n "$$f" ]; do rm -f "$$f"; done < "$(INSTALL_MANIFEST)"
	@# the directories that are milc's own (include/milc/..., lib/cmake/milc), when empty
	@sed -n 's,/[^/]*$$,,p' "$(INSTALL_MANIFEST)" | grep '/milc\(/\|$$\)' | sort -ru | \
	  while IFS= read -r d; do rmdir "$$d" 2>/dev/null || true; done
	@for d in $$(sed -n 's,\(.*/milc\)/.*,\1,p' "$(INSTALL_MANIFEST)" | sort -u); do rmdir "$$d" 2>/dev/null || true; done
	@echo "removed $$(grep -c "" "$(INSTALL_MANIFEST)") files"; rm -f "$(INSTALL_MANIFEST)"

# Coverage-guided fuzzing of the parser (fuzz_parse: parse + verify + print
# fixed point, small inputs; fuzz_passes: --grad and the -O2 pipeline), the
# .milb loader, the .npy reader and the Core ML reader
# (clang + libFuzzer; FUZZ_SECONDS each).  Crashes are written to build-fuzz/;
# keep a reproducer in test/fuzz/corpus/regressions (make check replays it).
# -entropic=0: with libFuzzer 14's entropic schedule, its rare-feature
# bookkeeping took 66-78 % of fuzz_parse's time (perf; tens of thousands of
# features), so the plain schedule runs 2-4x the inputs a second.  For
# fuzz_parse also -reduce_inputs=0: its per-feature binary search in the
# input's feature set was another ~24 % (60 s: 23.8k vs 18.5k execs/s, same
# coverage; the corpus stays bounded by -max_len=256).
FUZZ_SECONDS ?= 60
FUZZ_FLAGS ?= -entropic=0
fuzz: deps
	cmake -S . -B build-fuzz -DMILC_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-O1 -g"
	cmake --build build-fuzz -j $(JOBS) --target fuzz_parse fuzz_passes fuzz_milb fuzz_npy milc
	mkdir -p build-fuzz/corpus-parse build-fuzz/seed-mil && find test examples -name '*.mil' -size -4k -exec cp {} build-fuzz/seed-mil/ \;
	cp test/fuzz/corpus/regressions/* build-fuzz/seed-mil/
	cd build-fuzz && ./test/fuzz/fuzz_parse $(FUZZ_FLAGS) -reduce_inputs=0 -max_total_time=$(FUZZ_SECONDS) -max_len=256 corpus-parse seed-mil
	mkdir -p build-fuzz/corpus-passes build-fuzz/seed-passes && cp build-fuzz/seed-mil/* build-fuzz/seed-passes/ && \
	  for f in test/passes/data/grad/*.mil; do cp $$f build-fuzz/seed-passes/grad_$$(basename $$f); done
	cd build-fuzz && ./test/fuzz/fuzz_passes $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) -max_len=2048 corpus-passes seed-passes
	mkdir -p build-fuzz/corpus-milb && for f in test/passes/data/*.mil test/backend/data/*.mil examples/mil/*.mil test/frontend/data/*.mil; do \
	  ./build-fuzz/tools/milc -O0 --emit=milb -o build-fuzz/corpus-milb/$$(basename $$f .mil).milb $$f 2>/dev/null || true; done
	cd build-fuzz && ./test/fuzz/fuzz_milb -max_total_time=$(FUZZ_SECONDS) corpus-milb
	cd build-fuzz && ./test/fuzz/fuzz_npy -max_total_time=$(FUZZ_SECONDS)
	cmake --build build-fuzz -j $(JOBS) --target fuzz_coreml
	mkdir -p build-fuzz/corpus-coreml && for d in test/coreml/data/*.mlpackage; do \
	  cp $$d/Data/com.apple.CoreML/model.mlmodel build-fuzz/corpus-coreml/$$(basename $$d .mlpackage); done
	cd build-fuzz && ./test/fuzz/fuzz_coreml -max_total_time=$(FUZZ_SECONDS) corpus-coreml

# Core ML interoperability (not part of check): converts models with
# coremltools + PyTorch (a venv: MILC_VENV or $(BUILD)/venv-coreml), runs them
# with mil-run against PyTorch, writes them back with milc, loads milc's
# packages with coremltools, prints a table.
interop: build
	./test/coreml/gen_packages.py --interop $(BUILD)

clean:
	rm -rf build build-asan build-fuzz
