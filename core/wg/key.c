/* Base64 of 32-byte keys, written here because it is 30 lines and must be strict: OpenSSL's
 * decoder accepts spaces and non-canonical padding bits, wg(8) does not. */
#include "wg/key.h"

#include <errno.h>
#include <string.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void mt_wg_key_to_base64(char out[MT_WG_KEY_B64_LEN + 1], const uint8_t key[MT_WG_KEY_LEN])
{
    size_t o = 0;
    for (size_t i = 0; i < MT_WG_KEY_LEN; i += 3) {
        uint32_t v = (uint32_t)key[i] << 16;
        if (i + 1 < MT_WG_KEY_LEN)
            v |= (uint32_t)key[i + 1] << 8;
        if (i + 2 < MT_WG_KEY_LEN)
            v |= key[i + 2];
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
        out[o++] = i + 1 < MT_WG_KEY_LEN ? B64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < MT_WG_KEY_LEN ? B64[v & 63] : '=';
    }
    out[o] = '\0';
}

static int b64val(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

int mt_wg_key_from_base64(uint8_t key[MT_WG_KEY_LEN], const char *text)
{
    uint8_t out[MT_WG_KEY_LEN + 1];
    if (strlen(text) != MT_WG_KEY_B64_LEN || text[43] != '=')
        return -EINVAL;
    size_t o = 0;
    for (size_t i = 0; i < MT_WG_KEY_B64_LEN; i += 4) {
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int d = i + j == 43 ? 0 : b64val(text[i + j]);
            if (d < 0)
                return -EINVAL;
            v = v << 6 | (uint32_t)d;
        }
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        if (o < sizeof(out))
            out[o++] = (uint8_t)v;
    }
    /* The last character carries 2 bits past the key: they must be zero (canonical). */
    if (out[MT_WG_KEY_LEN] != 0) {
        mt_wg_wipe(out, sizeof(out));
        return -EINVAL;
    }
    memcpy(key, out, MT_WG_KEY_LEN);
    mt_wg_wipe(out, sizeof(out));
    return 0;
}
