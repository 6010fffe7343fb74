# NexusCore build. `make` builds bin/nexusd, bin/nexus, the unit tests and the
# benchmarks into build/$(VARIANT). VARIANT=release (default, -O2) or
# VARIANT=asan (AddressSanitizer + UndefinedBehaviorSanitizer, -O1).
#
# Sources are found by directory so that adding a file never means editing
# this Makefile:
#   src/<module>/*.c      -> libnexus.a (the engine and the daemon's parts)
#   src/nexusd.c          -> nexusd (main only)
#   tools/nexus.c         -> nexus (the CLI)
#   tests/unit/test_*.c   -> one cmocka binary each
#   bench/bench_*.c       -> one benchmark binary each
#   mk/*.mk               -> extra rules (eBPF objects, wasm examples, ...)

VARIANT ?= release
BUILD   ?= build/$(VARIANT)
CC      ?= cc

PKGS := libxxhash libzstd libmicrohttpd jansson libbpf liburing libnats cmocka zlib libdeflate
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wformat=2 -Wvla
CFLAGS_COMMON := -std=gnu11 -g -D_GNU_SOURCE $(WARN) -Iinclude -Isrc -I$(BUILD)/gen $(PKG_CFLAGS) -pthread
# nexusd's heap: the engine allocates and frees many small sketch buffers on
# every bucket close, across shard threads; glibc malloc spent ~35% of
# nexusd's CPU there under load (bench/ingest.sh), jemalloc (as in Redis) a
# fraction of it. The ASan build keeps the sanitizer's allocator.
ifeq ($(VARIANT),asan)
  OPT    := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDOPT  := -fsanitize=address,undefined
  DAEMON_LIBS :=
else
  # -fvect-cost-model=dynamic: -O2 vectorizes only loops that need no
  # runtime alias check; the sketches' bin-wise adds and subtracts (DDSketch
  # merge/sub of windows) need one. Same results (no reassociation); the
  # distribution benchmark with its streams in cache goes 3.3M -> 5.1M
  # updates/s (bench_engine, NX_BENCH_TENANTS=100).
  OPT    := -O2 -march=x86-64-v2 -fvect-cost-model=dynamic
  LDOPT  :=
  DAEMON_LIBS := -ljemalloc
endif
CFLAGS  := $(CFLAGS_COMMON) $(OPT) $(EXTRA_CFLAGS)
LDLIBS  := $(PKG_LIBS) -ldl -lm -pthread

# MODULES restricts the library to some src/ folders (e.g. MODULES="common sketch")
# while other folders are being worked on; default: all of them.
MODULES ?= *
LIB_SRCS   := $(sort $(foreach m,$(MODULES),$(wildcard src/$(m)/*.c)))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS  := $(sort $(wildcard tests/unit/test_*.c))
TEST_BINS  := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(sort $(wildcard bench/bench_*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
LIB        := $(BUILD)/libnexus.a

# Generated headers (eBPF skeletons, ...) that library objects depend on;
# mk/*.mk fragments append to this.
GEN_HDRS :=

.PHONY: all lib tests bench clean
all: $(BUILD)/bin/nexusd $(BUILD)/bin/nexus tests bench

-include $(sort $(wildcard mk/*.mk))

lib: $(LIB)
tests: $(TEST_BINS)
bench: $(BENCH_BINS)

$(BUILD)/%.o: %.c $(GEN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/nexusd: $(BUILD)/src/nexusd.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDOPT) -o $@ $^ $(LDLIBS) $(DAEMON_LIBS)

$(BUILD)/bin/nexus: $(BUILD)/tools/nexus.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDOPT) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDOPT) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDOPT) -o $@ $^ $(LDLIBS)

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
