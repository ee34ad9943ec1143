/* The table of verbs core/main.c dispatches to. */
#include "verbs.h"

#include "keys.h"

#include <string.h>

static const struct {
    const char *word;
    int (*main)(int argc, char **argv);
} verbs[] = {
    {"replay", mt_replay_main},   {"test", mt_test_main},     {"show", mt_show_main},
    {"metrics", mt_metrics_main}, {"reload", mt_reload_main}, {"peer", mt_peer_main},
    {"call", mt_call_main},       {"genkey", mt_tool_genkey}, {"pubkey", mt_tool_pubkey},
    {"capture", mt_capture_main},
};

int (*mt_verb_find(const char *word))(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(word, verbs[i].word) == 0)
            return verbs[i].main;
    return NULL;
}
