/* `moontun genkey`: a new clamped private key in base64 on stdout. `moontun pubkey`: reads a
 * private key from stdin and writes its public key. The same text as wg(8); keys are wiped
 * after use and never written anywhere else. */
#include "keys.h"

#include <stdio.h>
#include <string.h>

#include "wg/crypto.h"
#include "wg/key.h"

int mt_tool_genkey(int argc, char **argv)
{
    uint8_t priv[MT_WG_KEY_LEN];
    char text[MT_WG_KEY_B64_LEN + 1];
    if (argc > 1) {
        fprintf(stderr, "usage: moontun genkey\n");
        return 2;
    }
    if (mt_wg_genkey(priv) < 0) {
        fprintf(stderr, "moontun genkey: no random bytes\n");
        return 1;
    }
    mt_wg_key_to_base64(text, priv);
    int ok = printf("%s\n", text) > 0 && fflush(stdout) == 0;
    mt_wg_wipe(priv, sizeof(priv));
    mt_wg_wipe(text, sizeof(text));
    return ok ? 0 : 1;
}

int mt_tool_pubkey(int argc, char **argv)
{
    uint8_t priv[MT_WG_KEY_LEN], pub[MT_WG_KEY_LEN];
    char line[128], text[MT_WG_KEY_B64_LEN + 1];
    int rc = 1;
    if (argc > 1) {
        fprintf(stderr, "usage: moontun pubkey < private.key\n");
        return 2;
    }
    if (!fgets(line, sizeof(line), stdin)) {
        fprintf(stderr, "moontun pubkey: no key on stdin\n");
        return 1;
    }
    line[strcspn(line, " \t\r\n")] = '\0';
    if (mt_wg_key_from_base64(priv, line) < 0) {
        fprintf(stderr, "moontun pubkey: stdin is not a base64 key (44 characters)\n");
    } else {
        mt_wg_clamp(priv); /* as wg pubkey does: a key from elsewhere may not be clamped */
        if (mt_wg_pubkey(pub, priv) == 0) {
            mt_wg_key_to_base64(text, pub);
            rc = printf("%s\n", text) > 0 && fflush(stdout) == 0 ? 0 : 1;
        }
    }
    mt_wg_wipe(priv, sizeof(priv));
    mt_wg_wipe(line, sizeof(line));
    return rc;
}
