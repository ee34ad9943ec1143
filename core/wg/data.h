/* Transport data messages (type 4): a 16-byte header (type, receiver index, 64-bit
 * little-endian counter), the plaintext padded to 16 bytes and sealed with ChaCha20-Poly1305
 * under the counter; an empty plaintext is a keepalive. Both directions work in place. */
#ifndef MOONTUN_WG_DATA_H
#define MOONTUN_WG_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "wg/noise.h"

#define MT_WG_PADDING       16
#define MT_WG_DATA_OVERHEAD (MT_WG_DATA_HEADER + MT_WG_TAG_LEN) /* plus up to 15 of padding */

/* Seals the len bytes of plaintext that the caller put at buf + MT_WG_DATA_HEADER (its
 * headroom): pads them with zeros to a multiple of 16 (not beyond mtu when mtu is not 0),
 * encrypts in place, writes the header and the tag; *out_len is the whole message. Errors:
 * -EMSGSIZE (cap too small), -EKEYEXPIRED (the key has sent REJECT_AFTER_MESSAGES). */
int mt_wg_data_seal(struct mt_wg_keypair *kp, uint8_t *buf, size_t cap, size_t len, size_t mtu,
                    size_t *out_len);
/* Reads the header of a data message: -EBADMSG when it is not one. */
int mt_wg_data_header(const uint8_t *msg, size_t len, uint32_t *receiver, uint64_t *counter);
/* Opens a data message for kp (found by its receiver index) in place: the padded plaintext
 * is then at msg + MT_WG_DATA_HEADER, *pt_len bytes (0: keepalive). Errors: -EBADMSG (not a
 * data message of this key, or it does not authenticate), -EALREADY (a replayed or too old
 * counter), -EKEYEXPIRED (a counter past REJECT_AFTER_MESSAGES). The counter is recorded only
 * when the message authenticated. */
int mt_wg_data_open(struct mt_wg_keypair *kp, uint8_t *msg, size_t len, size_t *pt_len);
/* The length of the IP packet at the start of a padded plaintext, from its own header; 0 when
 * it is not an IPv4/IPv6 packet that fits (the caller drops it). */
size_t mt_wg_data_inner_len(const uint8_t *pt, size_t n);

#endif
