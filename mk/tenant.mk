# mk/tenant.mk — the tenant registry (src/tenant) hashes tokens with SHA-256
# from nettle (Debian nettle-dev). This fragment is included after the
# Makefile has set CFLAGS and LDLIBS with ':=', so '+=' appends to the
# already-expanded values and every link (nexusd, nexus, tests, benches)
# gets -lnettle.
CFLAGS += $(shell pkg-config --cflags nettle 2>/dev/null)
LDLIBS += $(shell pkg-config --libs nettle 2>/dev/null)
