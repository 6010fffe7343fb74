# mk/nxbsend.mk — the NXB load generator of bench/nxb_ingest.sh (issue 4):
# bench/nxb_sender.c on libnexus-client (linked from libnexus.a, which holds
# src/client). Not a bench_*.c so the generic benchmark rule leaves it alone.
$(BUILD)/bin/nx-nxb-sender: $(BUILD)/bench/nxb_sender.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDOPT) -o $@ $^ $(LDLIBS)

.PHONY: nxbsend
nxbsend: $(BUILD)/bin/nx-nxb-sender
bench: $(BUILD)/bin/nx-nxb-sender
