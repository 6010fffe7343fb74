# eBPF kernel stage: bpf/nx_steer.bpf.c -> $(BUILD)/bpf/nx_steer.bpf.o (clang
# -target bpf, with BTF from -g) -> $(BUILD)/gen/nx_steer.skel.h (bpftool gen
# skeleton; the object is embedded in the header, so nothing is loaded from
# disk at run time). Objects that include the skeleton build after it
# because GEN_HDRS is a prerequisite of every object.
# No vmlinux.h: <linux/bpf.h> from linux-libc-dev is enough for an
# sk_reuseport program, and builds without /sys/kernel/btf/vmlinux.
BPF_CLANG ?= clang
BPF_ARCH_INC := /usr/include/$(shell $(CC) -print-multiarch 2>/dev/null)
BPF_OBJ  := $(BUILD)/bpf/nx_steer.bpf.o
BPF_SKEL := $(BUILD)/gen/nx_steer.skel.h

$(BPF_OBJ): bpf/nx_steer.bpf.c bpf/nx_steer_abi.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) -O2 -g -Wall -target bpf -I$(BPF_ARCH_INC) -Ibpf -c $< -o $@

$(BPF_SKEL): $(BPF_OBJ)
	@mkdir -p $(dir $@)
	bpftool gen skeleton $< name nx_steer_bpf > $@.tmp && mv $@.tmp $@

GEN_HDRS += $(BPF_SKEL)
