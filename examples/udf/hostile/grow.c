/*
 * grow.c — memory.grow one page at a time until refused, then reports the
 * page count it reached in `state` (the host's cap), and on the next update
 * writes one byte past the end (an out-of-bounds trap).
 */
#include "hostile.h"

static int grown;

NX_EXPORT(nx_update) nx_i32 nx_update(const nx_event *ev, nx_u32 n)
{
    if (!grown) {
        while (__builtin_wasm_memory_grow(0, 1) != (unsigned long)-1)
            ;
        grown = 1;
        state = (double)__builtin_wasm_memory_size(0);
        return 0;
    }
    volatile nx_u32 end = (nx_u32)__builtin_wasm_memory_size(0) * 65536u;
    *(volatile nx_u8 *)(unsigned long)end = 1;
    return 0;
}
