# Benchmark tools that are not engine benchmarks (bench/bench_*.c is that
# pattern): the shared load generator and the Redis driver of bench/compare.
# Neither links libnexus; the Redis driver needs hiredis (Debian libhiredis-dev).

LOADGEN_CFLAGS := $(CFLAGS_COMMON) $(OPT) $(EXTRA_CFLAGS)

$(BUILD)/bin/nx-loadgen: bench/loadgen.c bench/workload.h
	@mkdir -p $(dir $@)
	$(CC) $(LOADGEN_CFLAGS) -o $@ bench/loadgen.c $(LDOPT) -lm -pthread

$(BUILD)/bin/nx-udp-sink: bench/udp_sink.c
	@mkdir -p $(dir $@)
	$(CC) $(LOADGEN_CFLAGS) -o $@ bench/udp_sink.c $(LDOPT) -pthread

$(BUILD)/bin/nx-redis-driver: bench/redis_driver.c bench/workload.h
	@mkdir -p $(dir $@)
	$(CC) $(LOADGEN_CFLAGS) $(shell pkg-config --cflags hiredis) -o $@ bench/redis_driver.c \
		$(LDOPT) $(shell pkg-config --libs hiredis) -lm -pthread

.PHONY: loadgen
loadgen: $(BUILD)/bin/nx-loadgen $(BUILD)/bin/nx-redis-driver $(BUILD)/bin/nx-udp-sink
bench: $(BUILD)/bin/nx-loadgen $(BUILD)/bin/nx-redis-driver $(BUILD)/bin/nx-udp-sink
