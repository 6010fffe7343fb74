/*
 * nx_shll.h — sliding HyperLogLog: the distinct count of any recent time
 * range from one structure, updated in O(1) per event.
 *
 * A plain HyperLogLog keeps per register the largest rank seen. A sliding
 * window would need that maximum over "the last L seconds" for every window
 * length, which per-sub-bucket HLLs answer with a merge per bucket close and
 * per window (the Two-Stacks design nx_window uses for top-k). Instead each
 * register keeps its LIST OF FUTURE POSSIBLE MAXIMA (Chabchoub & Hébrail,
 * "Sliding HyperLogLog", 2010): the (second, rank) pairs that can still be
 * the register's maximum for some range [from, now]. A pair is dropped as
 * soon as another one is at least as recent AND at least as large, so along
 * a register's list, newer entries have strictly smaller ranks; for n
 * distinct members per register the list holds about log2(n) + 1 entries.
 *
 *   add(hash, sec):   register i, rank r (exactly nx_hll's split of the
 *                     hash); if some (t, q) of register i has t >= sec and
 *                     q >= r the event changes nothing (the common case for
 *                     a member seen again); else every (t, q) with t <= sec
 *                     and q <= r is removed and (sec, r) inserted.
 *   read(from):       for every entry with sec >= from, register := max;
 *                     the result is an nx_hll exactly equal, register by
 *                     register, to an HLL of the members added with a second
 *                     in [from, now]. One read serves every window length.
 *
 * Entries older than the horizon (the longest window plus its sub-bucket)
 * can never be read again: they are dropped when met and by nx_shll_expire.
 *
 * Storage, sparse: one open-addressing table (linear probing, power-of-two
 * capacity, load <= 3/4, backward-shift deletion) of 8-byte entries
 * {(register << 6) | rank, second mod 2^32}, keyed by the register, so a
 * register's whole list lies in the probe run from its home slot. A small
 * set costs a small table.
 * Dense, past m/2 pairs or when growing the table would make it bigger than
 * the head array (p = 14: from ~6,100 pairs on; back below m/8): a head
 * array of m 4-byte words,
 * each register's oldest pair with its second in 26 bits, and the table for
 * the other pairs (most registers hold one). p = 14 with every register
 * used: 64 KiB + the overflow instead of a 256 KiB table. Reads take the
 * maximum over heads and table alike; an add takes the register's pairs
 * out of both, applies the rule and stores them back. Only for horizons
 * below 2^24 s (26-bit ages stay unambiguous). Either way, once per stream
 * rather than one dense HLL per sub-bucket of every window.
 *
 * Seconds are stored modulo 2^32 and compared relative to the stream clock
 * (`now`), which is valid while every live entry is younger than 2^31 s:
 * callers pass a clock that never goes backwards and call nx_shll_expire at
 * least once per horizon.
 */
#ifndef NX_SHLL_H
#define NX_SHLL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "nexus.h"

struct nx_rbuf;
typedef struct nx_shll nx_shll;

/* precision as nx_hll (14..18); horizon_s in 1..2^30: an entry older than
 * now - horizon_s + 1 is never read. */
int nx_shll_create(uint8_t precision, uint32_t horizon_s, nx_shll **out);
void nx_shll_destroy(nx_shll *s);
/* Adds a member hash (XXH3, as nx_hll_add_hash) seen at second `sec`
 * (sec <= now; older than the horizon: ignored). */
int nx_shll_add_hash(nx_shll *s, uint64_t hash, int64_t sec, int64_t now);
/* n hashes all seen at second `sec` (sec <= now), as n nx_shll_add_hash
 * calls in order would add them, with what every call checks (the grave's
 * fold, the horizon, the clock) decided once. On an error (NX_ENOMEM) a
 * prefix of them is in; adds are idempotent, so the caller may retry them
 * all. A drained member log adds a few at a time, between its top-k
 * tallies, the lines of later ones asked for with nx_shll_prefetch. */
int nx_shll_add_hashes(nx_shll *s, const uint64_t *hashes, uint32_t n, int64_t sec, int64_t now);
/* Hint: fetches the lines adds of these n hashes read first (each
 * register's head, or its probe run's start). */
void nx_shll_prefetch(const nx_shll *s, const uint64_t *hashes, uint32_t n);
/* Adds (register idx, rank) at second `sec` (decoders, migrations). */
int nx_shll_raise(nx_shll *s, uint32_t idx, uint8_t rank, int64_t sec, int64_t now);
/* out := out max-merged with the HLL of everything added at a second in
 * [from, now]; out must have the same precision (else NX_EINVAL). */
int nx_shll_read(const nx_shll *s, int64_t from, int64_t now, nx_hll *out);
/* The grave: an HLL (same precision) that keeps what pairs the sketch drops
 * dead, so that the sketch and its grave together hold every member ever
 * added, at any age: a set stream's all-time distinct count without an
 * HLL add per event. From now on raise, expire and maintain fold the whole
 * sketch into it every half horizon before they may drop anything, and a
 * pair raised too old to outlive the next fold goes there at once (the
 * invariant is at "the grave" in nx_shll.c). The grave must already hold
 * every pair the sketch holds (true of an empty sketch, or right after
 * nx_shll_bury); NULL detaches it. The caller keeps it alive. */
void nx_shll_set_grave(nx_shll *s, nx_hll *grave);
/* Folds every pair into the grave now (no-op without one): a snapshot
 * does, so that the grave alone is the whole all-time count it writes. */
int nx_shll_bury(nx_shll *s, int64_t now);
/* out := out max-merged with every pair the sketch holds, dead ones
 * included: with the grave, everything ever added (NX_EINVAL when the
 * precisions differ). */
int nx_shll_fold(const nx_shll *s, nx_hll *out);
/* Drops expired entries and shrinks the table to fit (frees it when empty). */
int nx_shll_expire(nx_shll *s, int64_t now);
/* nx_shll_expire when the last sweep is half a horizon old: callers that
 * move the clock call it now and then (cost O(table) per half horizon). */
int nx_shll_maintain(nx_shll *s, int64_t now);
/* Checks the invariants at the top of nx_shll.c with the clock at `now`:
 * every pair reachable from its register's home, the pair count and load,
 * no live pair dominated by another of its register, each dense head older
 * than its register's other pairs. 0, or NX_ECORRUPT (for tests: O(table)). */
int nx_shll_check(const nx_shll *s, int64_t now);
bool nx_shll_empty(const nx_shll *s);
size_t nx_shll_bytes(const nx_shll *s);
uint8_t nx_shll_precision(const nx_shll *s);
/* Live entries (for tests and stats). */
uint32_t nx_shll_entries(const nx_shll *s);

/* Layout (nested in the caller's frame): u8 p | uvar n | n x (uvar register
 * index | u8 rank | uvar age = now - second, < horizon), registers
 * increasing, and within a register oldest first: ages and ranks both
 * strictly decreasing (a list free of dominated pairs); anything else is
 * NX_ECORRUPT. Equal contents encode to equal bytes. */
int nx_shll_encode(const nx_shll *s, int64_t now, nx_buf *out);
int nx_shll_decode(struct nx_rbuf *in, uint8_t precision, uint32_t horizon_s, int64_t now,
                   nx_shll **out);

#endif
