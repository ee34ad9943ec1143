/* wg(8) configuration files (the `wg setconf` format, plus wg-quick's Address and MTU so an
 * existing wg0.conf works), parsed into plain data. Errors are one line naming the line number
 * and the key; keys the tunnel does not use are reported as notes, not errors. */
#ifndef MOONTUN_WG_CONFIG_H
#define MOONTUN_WG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wg/allowedips.h"
#include "wg/crypto.h"

#define MT_WG_CONFIG_MAX_BYTES (1 << 20) /* a configuration larger than this is refused */

struct mt_wg_config_peer {
    uint8_t pub[MT_WG_KEY_LEN];
    bool has_pub, has_psk, has_endpoint;
    uint8_t psk[MT_WG_KEY_LEN];
    struct mt_wg_prefix *allowed;
    size_t n_allowed;
    char endpoint_host[256]; /* a name or an address, brackets removed */
    uint16_t endpoint_port;
    unsigned keepalive; /* PersistentKeepalive seconds, 0: off */
    char name[64];      /* from a "# Name = ..." line (wg-quick tools' convention) */
    int line;           /* where its [Peer] starts */
};

struct mt_wg_config {
    bool has_priv, has_listen_port;
    uint8_t priv[MT_WG_KEY_LEN];
    uint16_t listen_port;
    struct mt_wg_prefix *addresses; /* wg-quick Address */
    size_t n_addresses;
    unsigned mtu; /* wg-quick MTU, 0: not given */
    struct mt_wg_config_peer *peers;
    size_t n_peers;
};

/* Called for each key that is accepted but ignored (line 0: about the whole file). */
typedef void (*mt_wg_config_note)(void *ctx, int line, const char *msg);

/* Parses len bytes of text. On error returns -EINVAL with err set ("line 7: PublicKey: not a
 * base64 key") and c empty. */
int mt_wg_config_parse(struct mt_wg_config *c, const char *text, size_t len, mt_wg_config_note note,
                       void *ctx, char *err, size_t errlen);
/* Reads and parses a file; errors are prefixed with its path. Notes that the file is readable
 * by others (as wg-quick warns). */
int mt_wg_config_load(struct mt_wg_config *c, const char *path, mt_wg_config_note note, void *ctx,
                      char *err, size_t errlen);
/* Frees and wipes the keys. */
void mt_wg_config_free(struct mt_wg_config *c);

#endif
