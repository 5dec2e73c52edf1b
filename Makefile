# rlhf.c — build, test, bench.   `make help` lists the targets.
#
# Layout the rules rely on (add files, not rules):
#   common/*.c            -> $(BUILD)/libcommon.a
#   <prog>/main.c (+ any other <prog>/*.c) -> $(BUILD)/bin/<prog>
#   tests/test_*.c        -> $(BUILD)/tests/test_*   (Check suites, linked with libcommon.a)
#   tests/test_*.sh       -> shell tests, run with BIN=$(BUILD)/bin
#   bench/bench_*.c       -> $(BUILD)/bench/bench_*

CC       ?= cc
CFLAGS   ?= -std=c11 -O2 -march=native -Wall -Wextra -Werror
BUILD    ?= build
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

# OpenBLAS built on OpenMP, so that our own parallel loops and the BLAS share one thread pool
# (two pools on two cores oversubscribe; see docs/architecture.md). Override OPENBLAS_DIR to use
# another build.
OPENBLAS_DIR ?= /usr/lib/$(MULTIARCH)/openblas-openmp
PKGS     := yaml-0.1 sqlite3 jansson
PKG_CFLAGS := $(shell PKG_CONFIG_PATH=$(OPENBLAS_DIR)/pkgconfig pkg-config --cflags openblas $(PKGS))
PKG_LIBS   := $(shell PKG_CONFIG_PATH=$(OPENBLAS_DIR)/pkgconfig pkg-config --libs openblas $(PKGS))
CHECK_LIBS := $(shell pkg-config --libs check)

CPPFLAGS += -D_DEFAULT_SOURCE -Icommon -Itests $(PKG_CFLAGS)
OMPFLAGS ?= -fopenmp
# No program reads errno after a math call. Without errno, sqrtf is one instruction rather than a
# call behind a branch, so loops that use it vectorise (AdamW: 150 -> 22 ms per c1 step); the
# results are the same bits (sqrt is correctly rounded either way).
MATHFLAGS ?= -fno-math-errno
LDFLAGS  += -Wl,-rpath,$(OPENBLAS_DIR)
LDLIBS   += $(PKG_LIBS) -lm

COMMON_SRC := $(sort $(wildcard common/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
PROGRAMS   := $(sort $(patsubst %/main.c,%,$(wildcard */main.c)))
PROG_BINS  := $(PROGRAMS:%=$(BUILD)/bin/%)
TEST_SRC   := $(sort $(wildcard tests/test_*.c))
TEST_BINS  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC  := $(sort $(wildcard bench/bench_*.c))
BENCH_BINS := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test test-run debug valgrind bench clean help check-interop hh-rm
.DEFAULT_GOAL := all

all: $(BUILD)/libcommon.a $(PROG_BINS)

help:
	@echo "make             build libcommon.a and every program into $(BUILD)/bin"
	@echo "make demo        base model, SFT, RLHF V1..V5 on the toy world -> runs/demo/report.md (docs/demo.md)"
	@echo "make demo-quick  the same pipeline with tiny settings -> runs/demo-quick, then its range check (CI runs it)"
	@echo "make demo-clean  remove runs/demo and runs/demo-quick"
	@echo "make test        install missing packages, build, run the Check suites and shell tests (some read ../shared/data)"
	@echo "make debug       the same tests in an AddressSanitizer + UBSan build (build-debug/)"
	@echo "make valgrind    a short training run (3 AdamW steps) and the store tests under valgrind's leak checker"
	@echo "make bench       rlhf.c against the PyTorch reference (creates .venv with torch on first use)"
	@echo "make check-interop  checkpoints vs transformers, both ways (creates .venv with transformers; not in CI)"
	@echo "make hh-rm       a safety reward model on hh-rlhf harmless-base beside two baselines (about 35 min; not in CI)"
	@echo "make clean       remove build/ and build-debug/"
	@echo "variables: CC CFLAGS BUILD OPENBLAS_DIR THREADS (bench thread count)"

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(MATHFLAGS) $(OMPFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libcommon.a: $(COMMON_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# A program is every .c file in its folder. (A function, because in a secondary expansion make
# substitutes the stem for a bare % before patsubst could see it.)
prog_objs = $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(1)/*.c))
.SECONDEXPANSION:
$(BUILD)/bin/%: $$(call prog_objs,$$*) $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(OMPFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libcommon.a
	$(CC) $(CFLAGS) $(OMPFLAGS) $(LDFLAGS) $^ $(LDLIBS) $(CHECK_LIBS) -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libcommon.a
	$(CC) $(CFLAGS) $(OMPFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

.SECONDARY:

# `make test` installs missing Debian packages first (a no-op when all are there), then re-reads this
# Makefile in a sub-make, because the pkg-config flags above are computed when it is parsed.
test:
	@sh scripts/install-deps.sh
	@$(MAKE) --no-print-directory test-run

test-run: all $(TEST_BINS)
	@BUILD=$(BUILD) sh tests/run.sh

DEBUG_CFLAGS ?= -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined -Wall -Wextra -Werror
debug:
	@sh scripts/install-deps.sh
	$(MAKE) BUILD=build-debug CFLAGS="$(DEBUG_CFLAGS)" LDFLAGS="-fsanitize=address,undefined" test-run

# valgrind cannot decode AVX-512, so this build targets AVX2 and OpenBLAS is told to do the same.
VG_CFLAGS ?= -std=c11 -O1 -g -march=haswell -Wall -Wextra -Werror
VG_TESTS  := test_model_ref test_safetensors test_store
valgrind:
	$(MAKE) BUILD=build-valgrind CFLAGS="$(VG_CFLAGS)" $(VG_TESTS:%=build-valgrind/tests/%)
	@sh tests/valgrind.sh build-valgrind $(VG_TESTS)

THREADS ?= 2
bench: all $(BENCH_BINS)
	@THREADS=$(THREADS) BUILD=$(BUILD) sh bench/run.sh

hh-rm: all
	@BIN=$(BUILD)/bin sh examples/hh_rm.sh

check-interop: $(BUILD)/bin/ckpt_tool
	@BUILD=$(BUILD) sh scripts/check-interop.sh

clean:
	rm -rf build build-debug build-valgrind

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# The RLHF demo (make demo, make demo-quick): its targets live in demo.mk.
-include demo.mk
