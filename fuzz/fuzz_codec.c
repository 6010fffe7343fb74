/*
 * fuzz_codec.c — libFuzzer target for the byte-level reader (nx_rbuf) and
 * frames (nx_frame_open). The first input byte chooses a script of reads, so
 * every getter runs against every kind of truncation; the rest is data.
 * Invariant checked: the cursor never runs past the input (ASan) and err is
 * sticky.
 */
#include <assert.h>
#include <stdint.h>
#include <stddef.h>
#include "common/nx_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t script = data[0];
    nx_rbuf r = nx_rbuf_make(data + 1, size - 1);
    for (int i = 0; i < 64 && r.n > 0; i++) {
        size_t before = r.n;
        switch ((script + i) % 9) {
        case 0: (void)nx_rbuf_u8(&r); break;
        case 1: (void)nx_rbuf_u16(&r); break;
        case 2: (void)nx_rbuf_u32(&r); break;
        case 3: (void)nx_rbuf_u64(&r); break;
        case 4: (void)nx_rbuf_f64(&r); break;
        case 5: (void)nx_rbuf_uvar(&r); break;
        case 6: (void)nx_rbuf_svar(&r); break;
        case 7: { size_t n; (void)nx_rbuf_bytes(&r, &n, 1024); break; }
        case 8: (void)nx_rbuf_take(&r, script & 31); break;
        }
        assert(r.n <= before);
        if (r.err)
            break;
    }
    /* frames: try as-is, then with the crc patched so the payload is reached */
    nx_rbuf payload;
    (void)nx_frame_open(data, size, 0x4D53584Eu, 1, &payload);
    if (size >= 9) {
        uint8_t buf[4096];
        size_t n = size < sizeof buf ? size : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = data[i];
        uint32_t crc = nx_crc32(buf, n - 4);
        for (int k = 0; k < 4; k++)
            buf[n - 4 + k] = (uint8_t)(crc >> (8 * k));
        uint32_t magic = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 |
                         (uint32_t)buf[3] << 24;
        int rc = nx_frame_open(buf, n, magic, buf[4], &payload);
        assert(rc == 0);
        assert(payload.n == n - 9);
    }
    /* writers round-trip what the readers accept */
    nx_buf b = {0};
    nx_rbuf r2 = nx_rbuf_make(data, size);
    uint64_t v = nx_rbuf_uvar(&r2);
    if (!r2.err && nx_buf_uvar(&b, v) == 0) {
        nx_rbuf r3 = nx_rbuf_make(b.data, b.len);
        assert(nx_rbuf_uvar(&r3) == v && !r3.err);
    }
    nx_buf_free(&b);
    return 0;
}
