/* Hex helper shared by the WireGuard unit tests (included, not a test itself). */
#ifndef MOONTUN_TEST_WG_HEX_H
#define MOONTUN_TEST_WG_HEX_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static inline size_t unhex(uint8_t *out, const char *hex)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

#endif
