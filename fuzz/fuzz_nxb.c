/*
 * fuzz_nxb.c — libFuzzer target for the NXB binary batch decoder, its event
 * iterator, TCP framing and ack decoder (src/ingest/nx_nxb.c). An accepted
 * batch must iterate exactly event_count events with valid stream indexes.
 */
#include <assert.h>
#include <stdint.h>
#include "ingest/nx_nxb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static nx_nxb_batch b; /* large (stream table): keep it off the stack */
    nx_nxb_stats st = {0};
    int reason = 0;
    if (nx_nxb_decode(data, size, &b, &st, &reason) == 0) {
        nx_nxb_iter it;
        nx_nxb_event ev;
        uint32_t k = 0;
        nx_nxb_iter_init(&it, &b);
        while (nx_nxb_next(&it, &ev) == 1) {
            assert(ev.stream_idx < b.nstreams);
            k++;
        }
        assert(k == b.event_count);
    }
    (void)nx_nxb_reason_name(reason);
    (void)nx_nxb_frame_len(data, size, 1u << 20, &reason);
    nx_nxb_ack ack;
    (void)nx_nxb_ack_decode(data, size, &ack);
    return 0;
}
