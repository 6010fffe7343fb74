# mk/fuzz.mk — libFuzzer targets (issue 6: every parser fuzzed).
#
#   make fuzz            builds build/fuzz/fuzz_* with Debian's clang 14
#                        (-fsanitize=fuzzer,address,undefined; the runtime
#                        comes from libclang-rt-14-dev)
#   scripts/fuzz.sh [S]  runs each for S seconds (default 20) on its seed
#                        corpus fuzz/corpus/<target>/, fails on a crash
#
# Each target compiles the library sources it needs directly with clang (not
# libnexus.a, which gcc builds without coverage instrumentation). A target
# whose sources are missing is not defined, so `make fuzz` builds what exists
# and scripts/fuzz.sh reports the rest as skipped.
#
# Targets and the code they reach:
#   fuzz_codec           src/common (nx_rbuf readers, varints, frames)
#   fuzz_sketch_decode   src/sketch decoders (DDSketch, HLL, top-k, moments)
#   fuzz_summary_decode  nx_summary_decode (src/engine)
#   fuzz_engine_decode   nx_engine_decode, snapshots' payload (src/engine, src/window)
#   fuzz_registry_json   tenants.json loader (src/tenant)
#   fuzz_statsd          StatsD/DogStatsD line parser (src/ingest/nx_statsd.c)
#   fuzz_nxb             NXB batch decoder, iterator, framing, acks (src/ingest/nx_nxb.c)
#   fuzz_wal             WAL segment recovery (src/store/nx_wal.c)

FUZZ_CC     ?= clang
FUZZ_BUILD  ?= build/fuzz
FUZZ_PKGS   := libxxhash libzstd jansson zlib nettle libdeflate
FUZZ_CFLAGS := -std=gnu11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
               -Wall -Wextra -Wno-unused-parameter -Iinclude -Isrc -Ifuzz -pthread \
               $(shell pkg-config --cflags $(FUZZ_PKGS) 2>/dev/null)
FUZZ_LIBS   := $(shell pkg-config --libs $(FUZZ_PKGS) 2>/dev/null) -lm -pthread

FUZZ_COMMON := $(wildcard src/common/*.c)
FUZZ_SKETCH := $(FUZZ_COMMON) $(wildcard src/sketch/*.c)
FUZZ_ENGINE := $(FUZZ_SKETCH) $(wildcard src/window/*.c) $(wildcard src/engine/*.c)

# name, library sources, required files (the target exists only if all do)
FUZZ_DEFS :=
define nx_fuzz_target
ifneq ($$(strip $$(foreach f,$(3),$$(if $$(wildcard $$(f)),,missing))),missing)
FUZZ_DEFS += $(FUZZ_BUILD)/$(1)
$(FUZZ_BUILD)/$(1): fuzz/$(1).c $(2) $$(wildcard fuzz/*.h)
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -o $$@ fuzz/$(1).c $(2) $$(FUZZ_LIBS)
endif
endef

$(eval $(call nx_fuzz_target,fuzz_codec,$(FUZZ_COMMON),src/common/nx_codec.c))
$(eval $(call nx_fuzz_target,fuzz_sketch_decode,$(FUZZ_SKETCH),src/sketch/nx_ddsketch.c))
$(eval $(call nx_fuzz_target,fuzz_summary_decode,$(FUZZ_ENGINE),src/engine/nx_summary.c))
$(eval $(call nx_fuzz_target,fuzz_engine_decode,$(FUZZ_ENGINE),src/engine/nx_engine_codec.c))
$(eval $(call nx_fuzz_target,fuzz_registry_json,$(FUZZ_COMMON) $(wildcard src/tenant/*.c),src/tenant/nx_registry.c))
$(eval $(call nx_fuzz_target,fuzz_statsd,$(FUZZ_ENGINE) $(wildcard src/ingest/nx_statsd.c),src/ingest/nx_statsd.c))
$(eval $(call nx_fuzz_target,fuzz_nxb,$(FUZZ_ENGINE) $(wildcard src/ingest/nx_nxb.c),src/ingest/nx_nxb.c))
$(eval $(call nx_fuzz_target,fuzz_wal,$(FUZZ_COMMON) $(wildcard src/store/nx_wal.c src/store/nx_syncer.c src/store/nx_store_util.c),src/store/nx_wal.c))

# Seed generator: encodes real sketches/summaries/engines/batches into
# fuzz/corpus/ (run once by hand with `make fuzz-seeds`; output is committed).
$(FUZZ_BUILD)/gen_seeds: fuzz/gen_seeds.c $(FUZZ_ENGINE) $(wildcard src/ingest/nx_nxb.c)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude -Isrc -o $@ $^ $(FUZZ_LIBS)

.PHONY: fuzz fuzz-seeds
fuzz: $(FUZZ_DEFS)
fuzz-seeds: $(FUZZ_BUILD)/gen_seeds
	$(FUZZ_BUILD)/gen_seeds fuzz/corpus
