/* Fuzzes the wg(8) configuration parser (core/wg/config.c) and base64 keys (key.c) with
 * arbitrary text: no crash, no leak, and what it accepts is consistent (every peer has a key,
 * prefixes are in range, strings end); an error is one line. A key that decodes encodes back
 * to the same text (only the canonical form is accepted).
 *
 * Input: the file's text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wg/config.h"
#include "wg/key.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_wgconfig: check failed at line %d: %s\n", __LINE__, #cond);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void prefixes_ok(const struct mt_wg_prefix *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECK((p[i].family == 4 && p[i].bits <= 32) || (p[i].family == 6 && p[i].bits <= 128));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    struct mt_wg_config c;
    char err[256];
    err[0] = '\0';
    if (mt_wg_config_parse(&c, text, size, NULL, NULL, err, sizeof(err)) == 0) {
        CHECK(c.has_priv);
        prefixes_ok(c.addresses, c.n_addresses);
        for (size_t i = 0; i < c.n_peers; i++) {
            struct mt_wg_config_peer *p = &c.peers[i];
            CHECK(p->has_pub && p->line > 0);
            CHECK(memchr(p->name, '\0', sizeof(p->name)));
            CHECK(!p->has_endpoint || (p->endpoint_port && p->endpoint_host[0]));
            prefixes_ok(p->allowed, p->n_allowed);
        }
        mt_wg_config_free(&c);
    } else {
        CHECK(err[0] && !strchr(err, '\n'));
        CHECK(c.n_peers == 0 && c.peers == NULL);
    }
    if (size >= MT_WG_KEY_B64_LEN) {
        char k[MT_WG_KEY_B64_LEN + 1], back[MT_WG_KEY_B64_LEN + 1];
        uint8_t key[MT_WG_KEY_LEN];
        memcpy(k, data, MT_WG_KEY_B64_LEN);
        k[MT_WG_KEY_B64_LEN] = '\0';
        if (mt_wg_key_from_base64(key, k) == 0) {
            mt_wg_key_to_base64(back, key);
            CHECK(!strcmp(back, k));
        }
    }
    free(text);
    return 0;
}
