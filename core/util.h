/* Small helpers private to the core and the Lua binding: the one container_of, which turns a
 * pointer to a member (a libev watcher, an embedded generic struct) back into its owner. */
#ifndef MOONTUN_CORE_UTIL_H
#define MOONTUN_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A branch the data path expects not to take (a capture running, a drop). */
#define mt_unlikely(x) __builtin_expect(!!(x), 0)

/* The struct of type `type` whose member `member` is at ptr. */
#define mt_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* The splitmix64/murmur3 finaliser: every input bit flips about half the output bits. The
 * keyed hashes of peers and routes mix a per-process secret with it. */
static inline uint64_t mt_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

#endif
