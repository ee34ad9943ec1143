/* Data messages: seal and open in place, the replay window consulted only after the tag
 * verified, so a forged counter can neither move the window nor burn a counter. */
#include "wg/data.h"

#include <errno.h>
#include <string.h>

int mt_wg_data_seal(struct mt_wg_keypair *kp, uint8_t *buf, size_t cap, size_t len, size_t mtu,
                    size_t *out_len)
{
    if (kp->send_counter >= MT_WG_REJECT_AFTER_MESSAGES)
        return -EKEYEXPIRED;
    size_t padded = (len + MT_WG_PADDING - 1) / MT_WG_PADDING * MT_WG_PADDING;
    if (mtu && padded > mtu)
        padded = len > mtu ? len : mtu; /* never pad past the MTU: the packet must still fit */
    if (cap < MT_WG_DATA_OVERHEAD || padded > cap - MT_WG_DATA_OVERHEAD)
        return -EMSGSIZE;
    uint8_t *pt = buf + MT_WG_DATA_HEADER;
    memset(pt + len, 0, padded - len);
    uint64_t counter = kp->send_counter;
    int rc = mt_wg_aead_seal(pt, kp->send, counter, pt, padded, NULL, 0);
    if (rc < 0)
        return rc;
    kp->send_counter++;
    mt_wg_put32(buf, MT_WG_MSG_DATA);
    mt_wg_put32(buf + MT_WG_OFF_INDEX, kp->remote_index);
    mt_wg_put64(buf + MT_WG_OFF_COUNTER, counter);
    *out_len = MT_WG_DATA_HEADER + padded + MT_WG_TAG_LEN;
    return 0;
}

int mt_wg_data_header(const uint8_t *msg, size_t len, uint32_t *receiver, uint64_t *counter)
{
    /* A liar sends less than a header and a tag. */
    if (len < MT_WG_DATA_MIN || mt_wg_msg_type(msg, len) != MT_WG_MSG_DATA)
        return -EBADMSG;
    *receiver = mt_wg_get32(msg + MT_WG_OFF_INDEX);
    *counter = mt_wg_get64(msg + MT_WG_OFF_COUNTER);
    return 0;
}

int mt_wg_data_open(struct mt_wg_keypair *kp, uint8_t *msg, size_t len, size_t *pt_len)
{
    uint32_t receiver;
    uint64_t counter;
    if (mt_wg_data_header(msg, len, &receiver, &counter) < 0 || receiver != kp->local_index)
        return -EBADMSG;
    if (counter >= MT_WG_REJECT_AFTER_MESSAGES)
        return -EKEYEXPIRED;
    size_t n = len - MT_WG_DATA_HEADER; /* >= 16: checked by mt_wg_data_header */
    uint8_t *pt = msg + MT_WG_DATA_HEADER;
    if (mt_wg_aead_open(pt, kp->recv, counter, pt, n, NULL, 0) < 0)
        return -EBADMSG;
    if (!mt_wg_replay_check(&kp->replay, counter, MT_WG_REJECT_AFTER_MESSAGES))
        return -EALREADY;
    *pt_len = n - MT_WG_TAG_LEN;
    return 0;
}

size_t mt_wg_data_inner_len(const uint8_t *pt, size_t n)
{
    size_t len;
    if (n >= 20 && pt[0] >> 4 == 4)
        len = (size_t)pt[2] << 8 | pt[3];
    else if (n >= 40 && pt[0] >> 4 == 6)
        len = 40 + ((size_t)pt[4] << 8 | pt[5]);
    else
        return 0;
    /* A liar's header claims more than arrived, or less than a header. */
    if (len > n || len < (pt[0] >> 4 == 4 ? 20u : 40u))
        return 0;
    return len;
}
