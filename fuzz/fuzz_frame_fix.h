/*
 * fuzz_frame_fix.h — shared helper for targets whose input is a CRC'd frame
 * (u32 magic | u8 version | payload | u32 crc32): a copy of the input with
 * magic, version and crc forced valid, so mutations reach the payload decoder
 * instead of dying at the checksum. Both the raw and the fixed input are fed.
 */
#ifndef NX_FUZZ_FRAME_FIX_H
#define NX_FUZZ_FRAME_FIX_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/nx_codec.h"

/* Returns a malloc'ed fixed copy of data (NULL if too short / no memory). */
static inline uint8_t *nx_fuzz_frame_fix(const uint8_t *data, size_t size, uint32_t magic,
                                         uint8_t version)
{
    if (size < 9)
        return NULL;
    uint8_t *b = malloc(size);
    if (!b)
        return NULL;
    memcpy(b, data, size);
    for (int k = 0; k < 4; k++)
        b[k] = (uint8_t)(magic >> (8 * k));
    b[4] = version;
    uint32_t crc = nx_crc32(b, size - 4);
    for (int k = 0; k < 4; k++)
        b[size - 4 + k] = (uint8_t)(crc >> (8 * k));
    return b;
}

#endif
