/* Keys as wg(8) writes them: 32 bytes in base64 (44 characters, one '='), strictly (the
 * canonical form only, as wg does), and the genkey/pubkey operations on that text. */
#ifndef MOONTUN_WG_KEY_H
#define MOONTUN_WG_KEY_H

#include <stdint.h>

#include "wg/crypto.h"

#define MT_WG_KEY_B64_LEN 44

/* out gets 44 characters and a NUL. */
void mt_wg_key_to_base64(char out[MT_WG_KEY_B64_LEN + 1], const uint8_t key[MT_WG_KEY_LEN]);
/* -EINVAL unless text is exactly a canonical base64 key (no surrounding spaces). */
int mt_wg_key_from_base64(uint8_t key[MT_WG_KEY_LEN], const char *text);

#endif
