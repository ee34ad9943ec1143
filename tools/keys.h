/* The `moontun genkey` and `moontun pubkey` verbs (wg genkey / wg pubkey for users without
 * wireguard-tools). Each returns the process exit status. */
#ifndef MOONTUN_TOOLS_KEYS_H
#define MOONTUN_TOOLS_KEYS_H

int mt_tool_genkey(int argc, char **argv);
int mt_tool_pubkey(int argc, char **argv);

#endif
